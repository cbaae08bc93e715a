"""Pages whose service is being built elsewhere (alerts from detection, incidents with
their scope and notices): they are in the navigation and say plainly that they are
not available yet, with no made-up content."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from carevault.web.console.guard import OfficerDep
from carevault.web.console.render import page

router = APIRouter()


@router.get("/console/alerts")
async def alerts(request: Request, viewer: OfficerDep) -> Response:
    return page(
        request,
        "console/placeholder.html",
        {"title_key": "nav.alerts", "body_key": "pending.alerts"},
        current="/console/alerts",
    )


@router.get("/console/incidents")
async def incidents(request: Request, viewer: OfficerDep) -> Response:
    return page(
        request,
        "console/placeholder.html",
        {"title_key": "nav.incidents", "body_key": "pending.incidents"},
        current="/console/incidents",
    )
