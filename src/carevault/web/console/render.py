"""Rendering console pages: one Jinja2 environment, the navigation, and what every page
knows (who is signed in, the language, the CSRF token)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from carevault.console.sessions import Viewer
from carevault.domain.roles import Role
from carevault.web.console.guard import MANAGERS, OFFICER, services
from carevault.web.console.i18n import Translator, negotiate

TEMPLATES = Path(__file__).parent.parent / "templates"
templates = Jinja2Templates(directory=str(TEMPLATES))
HTMX = "htmx-2.0.11.min.js"


@dataclass(frozen=True)
class NavItem:
    path: str
    label: str
    roles: frozenset[Role]
    #: False while the service behind the page is not built yet: the page says so.
    available: bool = True


NAVIGATION = (
    NavItem("/console/dashboard", "nav.dashboard", MANAGERS),
    NavItem("/console/alerts", "nav.alerts", OFFICER),
    NavItem("/console/containment", "nav.containment", MANAGERS),
    NavItem("/console/staff", "nav.staff", MANAGERS),
    NavItem("/console/break-glass", "nav.break_glass", OFFICER),
    NavItem("/console/incidents", "nav.incidents", OFFICER),
    NavItem("/console/patients", "nav.patients", OFFICER),
)


def translator(request: Request, viewer: Viewer | None) -> Translator:
    zone = ZoneInfo(services(request).settings.timezone)
    if viewer is not None and viewer.language:
        return Translator(viewer.language, zone)
    kept: str | None = getattr(request.state, "language", None)
    if kept:
        return Translator(kept, zone)
    language = negotiate(request.query_params.get("lang"), request.headers.get("accept-language"))
    return Translator(language, zone)


def page(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    current: str | None = None,
) -> Response:
    """A console page (or, for an htmx request that asks for one, just its fragment)."""
    viewer: Viewer | None = getattr(request.state, "viewer", None)
    t = translator(request, viewer)
    nav = [item for item in NAVIGATION if viewer is not None and viewer.role in item.roles]
    values = {
        "t": t,
        "viewer": viewer,
        "csrf": getattr(request.state, "csrf", ""),
        "nav": nav,
        "current": current,
        "htmx": HTMX,
        "now_us": services(request).now_us(),
        "officer": viewer is not None and viewer.is_officer,
        **context,
    }
    return templates.TemplateResponse(request, template, values, status_code=status)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def malformed(request: Request, current: str | None = None) -> Response:
    """The console's 400 page: a path, query or form value that is none of the page's
    own (an id no row can have, a mode or language it does not know). Said, not read as
    something else; nothing was done."""
    return page(
        request,
        "console/error.html",
        {"title_key": "error.malformed_title", "body_key": "error.malformed"},
        status=400,
        current=current,
    )
