"""The privacy officer's console at /console/: server-rendered pages (Jinja2, htmx as
one vendored file), in English and Traditional Chinese.

``install(app, services)`` mounts it: the routes, the static files, the security
headers, and what happens when a request has no session, the wrong role or another
session's CSRF token. Every action calls the same service as its CLI command and API
route; see docs/console.md for who may use which page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from carevault.bootstrap import Services
from carevault.web.console import (
    alerts,
    breach,
    containment,
    dashboard,
    glass,
    incidents,
    patients,
    signin,
    staff,
)
from carevault.web.console.clinics import ClinicNames
from carevault.web.console.guard import (
    CsrfRefused,
    ForeignRequest,
    NotForYou,
    SignInRequired,
    cookie_name,
)
from carevault.web.console.render import is_htmx, malformed, page
from carevault.web.cookies import secure_cookie
from carevault.web.headers import SecurityHeaders
from carevault.web.responses import on_validation_error
from carevault.web.routers import include

STATIC = Path(__file__).parent.parent / "static" / "console"


async def _sign_in_required(request: Request, error: Exception) -> Response:
    assert isinstance(error, SignInRequired)  # noqa: S101 - registered for it only
    why = "idle" if error.timed_out else "required"
    target = f"/console/sign-in?why={why}"
    if request.method == "GET" and not is_htmx(request):
        target += f"&next={quote(request.url.path)}"
    if is_htmx(request):
        response: Response = Response(status_code=401, headers={"HX-Redirect": target})
    else:
        response = RedirectResponse(target, status_code=303)
    response.delete_cookie(
        cookie_name(request), path="/", secure=secure_cookie(request), httponly=True
    )
    return response


def _refused_page(
    title_key: str, body_key: str
) -> Callable[[Request, Exception], Awaitable[Response]]:
    """The handler of a refusal the console answers with its own page (403)."""

    async def refused(request: Request, _error: Exception) -> Response:
        return page(
            request,
            "console/error.html",
            {"title_key": title_key, "body_key": body_key},
            status=403,
        )

    return refused


async def _malformed(request: Request, error: Exception) -> Response:
    """A console request whose path or form a page cannot read (an id that is no number
    a row can have): the console's own page, 400; elsewhere the FHIR answer, as before.
    The officer had been shown an OperationOutcome in JSON."""
    if not request.url.path.startswith("/console/"):
        return await on_validation_error(request, error)
    return malformed(request)


def install(app: FastAPI, services: Services) -> None:
    app.state.console_clinics = ClinicNames(services)
    app.add_middleware(SecurityHeaders, prefix="/console", static="/console/static/")
    app.add_exception_handler(SignInRequired, _sign_in_required)
    app.add_exception_handler(NotForYou, _refused_page("error.forbidden_title", "error.forbidden"))
    app.add_exception_handler(CsrfRefused, _refused_page("error.csrf_title", "error.csrf"))
    app.add_exception_handler(ForeignRequest, _refused_page("error.foreign_title", "error.foreign"))
    # Replaces the app's handler for every path: it hands the others back to it.
    app.add_exception_handler(RequestValidationError, _malformed)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    include(
        app,
        signin.router,
        dashboard.router,
        containment.router,
        staff.router,
        glass.router,
        patients.router,
        alerts.router,
        incidents.router,
        breach.router,
    )

    @app.get("/console/{rest:path}", include_in_schema=False)
    async def not_found(request: Request, rest: str) -> Response:
        return page(
            request,
            "console/error.html",
            {"title_key": "error.not_found_title", "body_key": "error.not_found"},
            status=404,
        )
