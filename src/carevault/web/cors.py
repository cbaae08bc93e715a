"""Cross-origin requests from browser SMART apps (the Fetch standard's CORS protocol).

A browser app that signs in with the code flow then calls the token endpoint and
``/fhir`` from its own page, on another origin: without these headers the browser
keeps the answers from it. Only the origins of registered public apps' redirect URIs
(and ``CAREVAULT_CORS_ORIGINS``) are answered, each by name and never with ``*``; no
other page is told anything, and no credentials (cookies) are ever allowed across
origins: the API is called with bearer tokens, the console and the sign-in page are
same-origin only. A revoked app's origin is dropped within ``cors_refresh_seconds``.

Only the paths an app calls by script take part: the token and revocation endpoints,
``/fhir`` and the discovery documents. ``/auth/authorize`` is a page the browser is
sent to, and ``/console``, ``/admin`` and ``/audit`` are not for apps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from carevault.bootstrap import Services

_EXACT_PATHS = frozenset(
    {
        "/auth/token",
        "/auth/revoke",
        "/.well-known/smart-configuration",
        "/.well-known/openid-configuration",
        "/.well-known/jwks.json",
        "/fhir",
    }
)
_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE"
_ALLOWED_METHODS = frozenset(_METHODS.replace(",", "").split())
#: Request headers an app may send: what FHIR and OAuth requests use, nothing else.
_ALLOWED_HEADERS = frozenset(
    {
        "accept",
        "accept-language",
        "authorization",
        "content-type",
        "if-match",
        "if-none-match",
        "if-modified-since",
        "if-none-exist",
        "prefer",
        "x-request-id",
    }
)
#: Response headers an app may read (beyond the CORS-safelisted ones).
_EXPOSED = (
    "Location, Content-Location, ETag, Last-Modified, WWW-Authenticate, Retry-After, X-Request-ID"
)
_PREFLIGHT_SECONDS = "600"


def takes_part(path: str) -> bool:
    """Whether ``path`` answers cross-origin requests at all."""
    return path in _EXACT_PATHS or path.startswith("/fhir/")


class AllowedOrigins:
    """The configured origins and those of live public apps, re-read every ``refresh``
    seconds (apps are registered and revoked while the server runs)."""

    def __init__(
        self, configured: frozenset[str], registered: Callable[[], frozenset[str]], refresh: float
    ) -> None:
        self.configured = configured
        self.registered = registered
        self.refresh = refresh
        self._known: frozenset[str] = frozenset()
        self._read_at: float | None = None
        self._lock = threading.Lock()

    def current(self) -> frozenset[str]:
        now = time.monotonic()
        with self._lock:
            if self._read_at is not None and now - self._read_at < self.refresh:
                return self._known
        known = self.configured | self.registered()
        with self._lock:
            self._known, self._read_at = known, now
        return known

    def allows(self, origin: str) -> bool:
        return origin.lower() in self.current()


class CrossOrigin:
    """ASGI middleware: answers preflights for allowed origins (and refuses the rest
    with 403 and no CORS headers), and names an allowed origin on actual responses."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        settings = services.settings
        self.origins = AllowedOrigins(
            settings.cors_origin_list,
            services.clients.browser_origins,
            settings.cors_refresh_seconds,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not takes_part(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        preflight = scope["method"] == "OPTIONS" and "access-control-request-method" in headers
        allowed = await run_in_threadpool(self.origins.allows, origin)
        if preflight:
            await self._preflight(headers, origin, allowed)(scope, receive, send)
            return
        if not allowed:
            # The request runs as it would without an Origin (a bearer token still decides);
            # the browser keeps the answer from the page.
            await self.app(scope, receive, send)
            return

        async def named(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                response_headers["Access-Control-Allow-Origin"] = origin
                response_headers["Access-Control-Expose-Headers"] = _EXPOSED
                response_headers.add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, named)

    def _preflight(self, headers: Headers, origin: str, allowed: bool) -> Response:
        method = headers["access-control-request-method"].strip().upper()
        asked = {
            name.strip().lower()
            for name in headers.get("access-control-request-headers", "").split(",")
            if name.strip()
        }
        vary = {"Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"}
        if not allowed or method not in _ALLOWED_METHODS or not asked <= _ALLOWED_HEADERS:
            # No body: the browser shows the page nothing either way.
            return Response(status_code=403, headers=vary)
        return Response(
            status_code=204,
            headers={
                **vary,
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": _METHODS,
                "Access-Control-Allow-Headers": ", ".join(sorted(_ALLOWED_HEADERS)),
                "Access-Control-Max-Age": _PREFLIGHT_SECONDS,
            },
        )
