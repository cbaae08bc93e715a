"""Incidents (privacy officer only): the list, declaring one, and each incident with
its timeline, an amendment form, its notices and the regulators' clocks.

Declaring and amending call the incident service (``declare_case``,
``Incidents.amend``) as ``carevault incident declare|amend`` and ``/admin/incidents``
do, so each is a ledger entry and a signed checkpoint, the same way. The scope, the
notices and the reports are in ``breach``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from carevault.clock import to_micros
from carevault.console.sessions import StepUpRefused
from carevault.incidents import Actor, IncidentError, declare_case, incidents_for
from carevault.incidents.model import (
    Amendment,
    Status,
    instant,
    instant_in,
    parse_compromised,
    parse_title,
)
from carevault.notify.reports import REGULATORS
from carevault.web.console.guard import FormDep, OfficerDep, origin, services
from carevault.web.console.notices import clocks_of, notices_of
from carevault.web.console.render import page
from carevault.web.ids import RowId
from carevault.web.security import client_address

router = APIRouter()
LISTS = ("accounts", "clients", "addresses", "clinics")
FLAGS = ("database", "host", "key_service")


def local_instant(text: str, zone: ZoneInfo, name: str) -> str | None:
    """A date-time from a form (the browser's ``datetime-local``: no zone, meaning the
    group's time zone, as ``instant_in`` reads it everywhere) as an ISO-8601 instant;
    None when left empty."""
    text = text.strip()
    if not text:
        return None
    return instant(instant_in(text, zone, name))


def _words(values: dict[str, str], name: str) -> list[str]:
    """A form field of several items, one per line or separated by commas."""
    text = values.get(name, "")[:4000]
    return [item.strip() for item in text.replace(",", "\n").splitlines() if item.strip()]


def case_from_form(values: dict[str, str], zone: ZoneInfo) -> dict[str, Any]:
    case: dict[str, Any] = {name: _words(values, name) for name in LISTS}
    case.update({flag: values.get(flag) == "on" for flag in FLAGS})
    case["title"] = values.get("title", "")
    case["since"] = local_instant(values.get("since", ""), zone, "since")
    until = local_instant(values.get("until", ""), zone, "until")
    if until is not None:
        case["until"] = until
    return case


@router.get("/console/incidents")
async def incident_list(request: Request, viewer: OfficerDep) -> Response:
    return await _list_page(request)


async def _list_page(
    request: Request,
    *,
    error: str | None = None,
    detail: str = "",
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    svc = services(request)

    def gather() -> dict[str, Any]:
        return {"incidents": incidents_for(svc).all(), "clocks": clocks_of(svc)}

    context = await run_in_threadpool(gather)
    return page(
        request,
        "console/incidents.html",
        {
            "title_key": "incidents.title",
            "error": error,
            "detail": detail,
            "values": values or {},
            **context,
        },
        status=status,
        current="/console/incidents",
    )


@router.post("/console/incidents")
async def declare(request: Request, viewer: OfficerDep, values: FormDep) -> Response:
    svc = services(request)
    actor = Actor(viewer.principal, client_address(request))
    try:
        case = case_from_form(values, ZoneInfo(svc.settings.timezone))
        if case["since"] is None:
            raise IncidentError("since: the start of the window is required")
        declared = await run_in_threadpool(declare_case, svc, actor, case)
    except IncidentError as error:
        return await _list_page(
            request, error="incidents.invalid", detail=str(error), values=values, status=400
        )
    return RedirectResponse(
        f"/console/incidents/{declared.incident_id}?done=declared", status_code=303
    )


async def incident_page(
    request: Request, incident_id: int, *, error: str | None = None, detail: str = "",
    status: int = 200,
) -> Response:  # fmt: skip
    svc = services(request)

    def gather() -> dict[str, Any] | None:
        incidents = incidents_for(svc)
        try:
            found = incidents.get(incident_id)
        except IncidentError:
            return None
        key = str(incident_id)
        return {
            "incident_id": incident_id,
            "incident": found,
            "timeline": [
                {**item, "at_us": to_micros(datetime.fromisoformat(item["at"]))}
                for item in incidents.timeline(incident_id)
            ],
            "notices": notices_of(request.app, svc, key),
            "clocks": clocks_of(svc, key),
        }

    context = await run_in_threadpool(gather)
    if context is None:
        return page(
            request,
            "console/error.html",
            {"title_key": "incidents.unknown_title", "body_key": "incidents.unknown"},
            status=404,
            current="/console/incidents",
        )
    done = request.query_params.get("done", "")
    return page(
        request,
        "console/incident.html",
        {
            "title_key": "incidents.one_title",
            "error": error,
            "detail": detail,
            "done": done if done in DONE else None,
            "statuses": [item.value for item in Status],
            "regulators": REGULATORS,
            **context,
        },
        status=status,
        current="/console/incidents",
    )


DONE = ("declared", "amended", "notices", "decided")


@router.get("/console/incidents/{incident_id}")
async def incident(request: Request, incident_id: RowId, viewer: OfficerDep) -> Response:
    return await incident_page(request, incident_id)


@router.post("/console/incidents/{incident_id}/amend")
async def amend(
    request: Request, incident_id: RowId, viewer: OfficerDep, values: FormDep
) -> Response:
    svc = services(request)
    actor = Actor(viewer.principal, client_address(request))
    zone = ZoneInfo(svc.settings.timezone)
    try:
        case = case_from_form(values, zone)
        wanted = values.get("status", "")
        since, until = case.get("since"), case.get("until")
        amendment = Amendment(
            title=parse_title(case["title"]) if case["title"].strip() else None,
            status=Status(wanted) if wanted in {item.value for item in Status} else None,
            since_us=_micros(since, "since", zone),
            until_us=_micros(until, "until", zone),
            adds=parse_compromised({key: case[key] for key in (*LISTS, *FLAGS)}),
            note=values.get("note", "").strip()[:2000] or None,
        )
        code, seen_from = values.get("totp", ""), origin(request)

        def step_up(action: str) -> None:
            svc.console.confirm_code(viewer, code, action, seen_from)

        await run_in_threadpool(
            incidents_for(svc).amend, actor, incident_id, amendment, step_up=step_up
        )
    except StepUpRefused:
        return await incident_page(request, incident_id, error="stepup.refused", status=403)
    except IncidentError as error:
        return await incident_page(
            request, incident_id, error="incidents.invalid", detail=str(error), status=400
        )
    return RedirectResponse(f"/console/incidents/{incident_id}?done=amended", status_code=303)


def _micros(text: str | None, name: str, zone: ZoneInfo) -> int | None:
    return instant_in(text, zone, name) if text else None
