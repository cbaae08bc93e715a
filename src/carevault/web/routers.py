"""The routers every app of a process serves, prepared once per process.

FastAPI prepares an included router's routes (each endpoint's signature read into its
dependencies and parameters) for the app that includes it, when that app first matches
a request: about 70 ms for CareVault's routers, paid again by every app the process
builds. A server builds one app, but the tests build one a test, and that preparation
was a quarter of the test suite's CPU. The routers are included here once, into a hub
whose routes every app then serves; a dependency override (``app.dependency_overrides``)
is still the serving app's own (``ServingApp``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from threading import Lock
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

_SERVING: ContextVar[FastAPI | None] = ContextVar("carevault_serving_app", default=None)


class ServingApp:
    """The dependency-override provider of the shared routes: the overrides of the app
    that is serving the request (``App``), none outside a request."""

    @property
    def dependency_overrides(self) -> dict[Callable[..., Any], Callable[..., Any]]:
        app = _SERVING.get()
        return {} if app is None else app.dependency_overrides


SERVING = ServingApp()


class App(FastAPI):
    """A FastAPI app that says, while it serves a request, that it is the one serving."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _SERVING.set(self)
        try:
            await super().__call__(scope, receive, send)
        finally:
            _SERVING.reset(token)


def include(app: FastAPI, *routers: APIRouter) -> None:
    """Serve ``routers`` in ``app``, after its routes so far, in this order, as
    ``app.include_router`` would, with their routes prepared once per process."""
    key = tuple(map(id, routers))
    with _GUARD:
        prepared = _PREPARED.get(key)
        if prepared is None:
            hub = APIRouter(dependency_overrides_provider=SERVING)
            for router in routers:
                hub.include_router(router)
            # The routers are kept with their routes: an id is never another's.
            prepared = _PREPARED[key] = (routers, tuple(hub.routes))
    app.router.routes.extend(prepared[1])


_GUARD = Lock()
#: By the routers' ids: APIRouter is not hashable.
_PREPARED: dict[tuple[int, ...], tuple[tuple[APIRouter, ...], tuple[BaseRoute, ...]]] = {}
