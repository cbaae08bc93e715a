"""Incidents over HTTP for a privacy officer (JSON): the same commands as
``carevault incident``. Routes parse, call the incident service, and map its errors."""

from __future__ import annotations

import json
from datetime import tzinfo
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from carevault.fhir.outcome import FhirError, Issue
from carevault.gate import Caller
from carevault.incidents import (
    Actor,
    IncidentError,
    IncidentNotFound,
    ScopeRunMissing,
    ScopeRunTampered,
    StepUpRequired,
    case_from_alert,
    compute_scope,
    declare_case,
    incidents_for,
    kept_scope,
    zone_of,
)
from carevault.incidents.model import Amendment, Status, instant_in, parse_compromised
from carevault.incidents.report import render
from carevault.incidents.segments import SegmentRefused
from carevault.web.ids import RowId
from carevault.web.officers import officer_step_up, require_officer
from carevault.web.responses import NO_STORE
from carevault.web.security import CallerDep, ServicesDep
from carevault.web.statuses import status_filter

router = APIRouter()

MAX_BODY = 64 * 1024
MEDIA = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "fhir": "application/fhir+json",
}
#: The scope run a scope response is (its number) and its kept document's SHA-256.
RUN_HEADER = "x-carevault-scope-run"
DIGEST_HEADER = "x-carevault-scope-sha256"


def _officer(who: Caller) -> Actor:
    require_officer(who, "handle incidents")
    return Actor(who.principal, who.source_address)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise FhirError(413, [Issue("too-long", "the body is too large")])
    try:
        body = json.loads(raw)
    except ValueError:
        raise FhirError(400, [Issue("invalid", "the body is not JSON")]) from None
    if not isinstance(body, dict):
        raise FhirError(400, [Issue("invalid", "the body must be a JSON object")])
    return body


async def _run(call: Any, *args: Any, **named: Any) -> Any:
    try:
        return await run_in_threadpool(call, *args, **named)
    except (IncidentNotFound, ScopeRunMissing) as missing:
        raise FhirError(404, [Issue("not-found", str(missing))]) from None
    except ScopeRunTampered as tampered:
        raise FhirError(409, [Issue("conflict", str(tampered))]) from None
    except SegmentRefused as refused:
        raise FhirError(409, [Issue("conflict", f"scope refused: {refused}")]) from None
    except StepUpRequired as needed:
        raise FhirError(403, [Issue("forbidden", str(needed))]) from None
    except IncidentError as error:
        raise FhirError(400, [Issue("invalid", str(error))]) from None


def _json(document: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(document, status_code=status, headers=NO_STORE)


@router.get("/admin/incidents")
async def list_incidents(
    svc: ServicesDep, who: CallerDep, status: str | None = None
) -> JSONResponse:
    _officer(who)
    wanted = status_filter(status, [item.value for item in Status])
    found = await _run(incidents_for(svc).all, Status(wanted) if wanted else None)
    return _json({"incidents": [item.as_json() for item in found]})


@router.post("/admin/incidents")
async def declare(request: Request, svc: ServicesDep, who: CallerDep) -> JSONResponse:
    actor = _officer(who)
    body = await _body(request)
    alert = body.pop("alert", None)
    if alert is not None:
        if not isinstance(alert, str | int) or isinstance(alert, bool) or len(str(alert)) > 40:
            raise FhirError(400, [Issue("invalid", "alert: an alert's id")])
        body = await _run(case_from_alert, svc, str(alert), body)
    declared = await _run(declare_case, svc, actor, body, str(alert) if alert else None)
    return _json(declared.as_json(), 201)


@router.get("/admin/incidents/{incident_id}")
async def show(incident_id: RowId, svc: ServicesDep, who: CallerDep) -> JSONResponse:
    _officer(who)
    found = await _run(incidents_for(svc).get, incident_id)
    return _json(found.as_json())


def _amendment(body: dict[str, Any], zone: tzinfo) -> Amendment:
    known = {"title", "status", "since", "until", "adds", "note"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise IncidentError(f"unknown field {unknown[0][:40]!r}")
    status = body.get("status")
    if status is not None and status not in {item.value for item in Status}:
        raise IncidentError("status: open, contained or closed")
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 2000):
        raise IncidentError("note: a text of at most 2000 characters")
    title = body.get("title")
    if title is not None and (not isinstance(title, str) or not title.strip()):
        raise IncidentError("title: a non-empty text")
    adds = body.get("adds") or {}
    if not isinstance(adds, dict):
        raise IncidentError("adds: an object")
    return Amendment(
        title=title,
        status=Status(status) if status else None,
        since_us=_instant(body, "since", zone),
        until_us=_instant(body, "until", zone),
        adds=parse_compromised(adds),
        note=note,
    )


def _instant(body: dict[str, Any], name: str, zone: tzinfo) -> int | None:
    """A time of the body; one without a zone is the group's (``instant_in``)."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise IncidentError(f"{name}: an ISO-8601 date or time")
    return instant_in(value, zone, name)


@router.post("/admin/incidents/{incident_id}/amend")
async def amend(
    incident_id: RowId, request: Request, svc: ServicesDep, who: CallerDep
) -> JSONResponse:
    """``{"totp": ...}``: the officer's fresh code, needed when the amendment narrows the
    incident (a later start, an earlier end, closing it: ``Amendment.narrows``)."""
    actor = _officer(who)
    body = await _body(request)
    step_up = officer_step_up(svc.accounts, who, body.pop("totp", None))
    try:
        amendment = _amendment(body, zone_of(svc))
    except IncidentError as error:
        raise FhirError(400, [Issue("invalid", str(error))]) from None
    amended = await _run(incidents_for(svc).amend, actor, incident_id, amendment, step_up=step_up)
    return _json(amended.as_json())


@router.get("/admin/incidents/{incident_id}/timeline")
async def timeline(incident_id: RowId, svc: ServicesDep, who: CallerDep) -> JSONResponse:
    _officer(who)
    items = await _run(incidents_for(svc).timeline, incident_id)
    return _json({"incident": incident_id, "timeline": items})


@router.get("/admin/incidents/{incident_id}/scope")
async def scope(
    incident_id: RowId,
    svc: ServicesDep,
    who: CallerDep,
    format: str = "json",
    run: str | None = None,
) -> Response:
    """A new run, kept and recorded (the default); ``run=N`` or ``run=latest``: a kept run
    as it was computed, checked against its ledger entry. The body is the document either
    way; the run's number and digest are in headers."""
    actor = _officer(who)
    if format not in MEDIA:
        raise FhirError(400, [Issue("invalid", "format: json, csv, html or fhir")])
    if run is None:
        found = await _run(compute_scope, svc, incident_id, actor=actor)
    elif run == "latest" or (run.isdigit() and len(run) < 10):
        number = None if run == "latest" else int(run)
        found = await _run(kept_scope, svc, incident_id, number)
    else:
        raise FhirError(400, [Issue("invalid", "run: a run's number or latest")])
    headers = {**NO_STORE, RUN_HEADER: str(found.number), DIGEST_HEADER: found.sha256 or ""}
    if format == "json":
        return JSONResponse(found.document, headers=headers)
    text = await run_in_threadpool(render, found.document, format)
    return Response(text, media_type=MEDIA[format], headers=headers)


@router.get("/admin/incidents/{incident_id}/scope/runs")
async def scope_runs(incident_id: RowId, svc: ServicesDep, who: CallerDep) -> JSONResponse:
    _officer(who)
    found = await _run(incidents_for(svc).scope_runs, incident_id)
    return _json({"incident": incident_id, "runs": [item.as_json() for item in found]})
