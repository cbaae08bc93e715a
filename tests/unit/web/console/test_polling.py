"""Every request a console page makes by itself on a timer (htmx's ``hx-trigger="every
..."``) is served as a poll (``guard.polling_viewer``): it needs a live session but is
not the person's activity, so a screen left on such a page still reaches the idle
timeout. A new poll served by an ordinary route fails here."""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

import carevault.web
from carevault.web import console
from carevault.web.console.guard import current_viewer, polling_viewer

TEMPLATES = Path(carevault.web.__file__).parent / "templates"
#: A tag whose trigger repeats on a timer (``every 2s``, ``every 1m [cond]``).
TIMED = re.compile(r'<[^>]*\bhx-trigger="[^"]*\bevery\b[^>]*>')
GET = re.compile(r'\bhx-get="([^"]+)"')
#: A path's Jinja expression (``{{ incident_id }}``) is the route's parameter.
EXPRESSION = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def timed_requests() -> list[tuple[str, str]]:
    """(template, route path) of every timed request of the console's templates."""
    found = []
    for template in sorted(TEMPLATES.rglob("*.html")):
        for tag in TIMED.findall(template.read_text(encoding="utf-8")):
            path = GET.search(tag)
            assert path is not None, f"{template.name}: a timed trigger without hx-get: {tag}"
            found.append((template.name, EXPRESSION.sub(r"{\1}", path.group(1))))
    return found


def console_get_routes() -> dict[str, APIRoute]:
    routes: dict[str, APIRoute] = {}
    for module in pkgutil.iter_modules(console.__path__):
        loaded = importlib.import_module(f"{console.__name__}.{module.name}")
        router = getattr(loaded, "router", None)
        if isinstance(router, APIRouter):
            for route in router.routes:
                if isinstance(route, APIRoute) and "GET" in route.methods:
                    routes[route.path] = route
    return routes


def calls(dependant: Dependant) -> Iterator[Callable[..., Any] | None]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from calls(dependency)


def test_the_notice_panel_is_found_among_the_timed_requests() -> None:
    """The scan sees the one poll the console has today (else the next test is empty)."""
    assert ("notice_progress.html", "/console/incidents/{incident_id}/notices") in (
        timed_requests()
    )


def test_every_request_a_console_page_makes_on_a_timer_is_served_as_a_poll() -> None:
    routes = console_get_routes()
    for template, path in timed_requests():
        assert path in routes, (template, path)
        made = list(calls(routes[path].dependant))
        assert polling_viewer in made, (template, path)
        assert current_viewer not in made, (template, path)
