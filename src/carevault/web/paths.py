"""The path of a request as the audit ledger keeps it: the words of the app's own routes,
and ``{}`` for each segment the caller chose (an id, a job, a name typed where an id
goes). The ledger is kept in the clear and for good, and what is typed into a path may
be a patient's name or HKID number (adversary round 67); a refusal's entry says which
route was refused, and the gate's own entries name the records asked for."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from starlette.types import Scope

from carevault.fhir.registry import RESOURCE_TYPES

PLACEHOLDER = "{}"
_PARAMETER = re.compile(r"\{[^}]*\}")
_WORDS: dict[int, frozenset[str]] = {}
_APPS_REMEMBERED = 16


def _route_paths(routes: Iterable[Any]) -> Iterator[str]:
    """The path of every route, and the prefix of every router, among ``routes``: read
    with ``getattr``, as FastAPI keeps an included router's routes in a wrapper of its
    own (``original_router``) whose shape is its business."""
    for route in routes:
        path = getattr(route, "path", None)
        if isinstance(path, str):
            yield path
        router = getattr(route, "original_router", None)
        for inner in (route, router):
            prefix = getattr(inner, "prefix", None)
            if isinstance(prefix, str):
                yield prefix
            found = getattr(inner, "routes", None) if inner is not None else None
            if isinstance(found, list | tuple):
                yield from _route_paths(found)


def route_words(app: Any) -> frozenset[str]:
    """Every fixed segment of ``app``'s routes, and the FHIR resource types."""
    key = id(app)
    words = _WORDS.get(key)
    if words is None:
        if len(_WORDS) >= _APPS_REMEMBERED:
            _WORDS.clear()  # the tests build an app a test; a server, one
        found = {
            segment
            for path in _route_paths(getattr(app, "routes", ()))
            for segment in path.split("/")
            if segment and not _PARAMETER.search(segment)
        }
        words = _WORDS[key] = frozenset(found | set(RESOURCE_TYPES))
    return words


def path_shape(path: str, words: frozenset[str]) -> str:
    """``path`` with every segment that is not one of ``words`` as ``{}``."""
    return "/".join(
        segment if not segment or segment in words else PLACEHOLDER for segment in path.split("/")
    )[:200]


def logged_path(scope: Scope) -> str:
    """The path of the request ``scope`` as an audit entry keeps it (``path_shape``)."""
    return path_shape(str(scope.get("path", "")), route_words(scope.get("app")))
