"""The methods a path accepts: the ``Allow`` header a 405 must carry (RFC 9110 15.5.6).

Starlette's own 405 names the methods of the first route whose path matched, but a path
here is served by one route per method (``GET`` and ``PUT`` of a resource are two), so
its answer would leave out most of them; and the OperationOutcome that replaces its
answer dropped the header altogether. Here each method is tried against the app's
routes as the router tries them, through the routes' public ``matches``.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.routing import BaseRoute, Match, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from carevault.fhir.registry import RESOURCE_TYPES
from carevault.web.head import answers_head

#: The methods any route here could answer (none takes CONNECT or TRACE).
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
#: Endpoints that take every method only to refuse it (``web/unknown_operations.py``):
#: a path reaching them allows nothing.
REFUSING_ENDPOINTS: set[object] = set()
#: What a mounted directory of static files answers (``StaticFiles``).
_STATIC_METHODS = frozenset({"GET", "HEAD"})


def allowed_methods(routes: Sequence[BaseRoute], scope: Scope) -> list[str]:
    """The methods the app whose ``routes`` these are hands to a route at the request's
    path (rather than answering 405), in ``METHODS`` order. A generic FHIR route whose
    ``type_name`` is no type served here is left out, as it answers 404 whatever the
    method: ``/fhir/metadata`` allows GET, not the PUT and DELETE of ``/fhir/{type_name}``."""
    # The path as the app's own routes see it: a mount (the console's static files)
    # has moved the root path on by the time its 405 is raised.
    path: str = scope["path"]
    root: str = scope.get("app_root_path", scope.get("root_path", ""))
    if root and path.startswith(root + "/"):
        path = path[len(root) :]
    allowed = []
    for method in METHODS:
        # A HEAD of a FHIR read is served as its GET (``web/head.py``).
        routed = "GET" if method == "HEAD" and answers_head(path) else method
        probe: Scope = {"type": "http", "path": path, "root_path": "", "method": routed}
        route = _dispatched(routes, probe)
        if route is not None and _serves(route, probe):
            allowed.append(method)
    return allowed


def _dispatched(routes: Sequence[BaseRoute], probe: Scope) -> BaseRoute | None:
    """The route the router hands ``probe`` to: the first that matches it in full; for
    an included router (FastAPI's), its own route that does."""
    for route in routes:
        match, _ = route.matches(probe)
        if match is not Match.FULL:
            continue
        included = getattr(route, "original_router", None)
        inner = getattr(included, "routes", None)
        if isinstance(inner, list):
            return _dispatched(inner, probe) or route
        return route
    return None


def _serves(route: BaseRoute, probe: Scope) -> bool:
    if isinstance(route, Mount) and isinstance(route.app, StaticFiles):
        return probe["method"] in _STATIC_METHODS
    if getattr(route, "endpoint", None) in REFUSING_ENDPOINTS:
        return False
    path_regex = getattr(route, "path_regex", None)
    found = path_regex.match(probe["path"]) if path_regex is not None else None
    type_name = found.groupdict().get("type_name") if found is not None else None
    return type_name is None or type_name in RESOURCE_TYPES
