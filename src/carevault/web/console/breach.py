"""An incident's scope report, its notices and its regulators (privacy officer only).

* The scope: the latest kept run, shown at once (a scope of thousands of patients took
  longer to compute than a page may), saying when it was computed, up to which ledger
  positions, and what the ledger and the incident have seen since; the first visit
  computes the first run. Recompute runs ``compute_scope`` (as ``carevault incident
  scope`` and ``/admin/incidents/{id}/scope`` do: kept, recorded in the ledger). The
  charts are the incidents package's own SVG, each beside its figures as a table; the
  run's self-contained HTML report is a download, for the board.
* The notices: the send job of ``carevault notify send`` on a thread of the server,
  its progress polled by the page (htmx, no inline script).
* The regulators: each report as ``carevault report <regulator>`` makes it (JSON and
  PDF), and the officer's decision as ``carevault report decide`` records it (a fresh
  TOTP code and a reason; the ledger entry; the clock stops).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from carevault.incidents import (
    Actor,
    IncidentError,
    ScopeRun,
    ScopeRunMissing,
    ScopeRunTampered,
    compute_scope,
    incidents_for,
    kept_scope,
    runs,
)
from carevault.incidents.html import _bars, _timeline
from carevault.incidents.model import TIERS
from carevault.incidents.report import lines_of, render
from carevault.incidents.segments import SegmentRefused
from carevault.notify.actions import decide, scope_of
from carevault.notify.decisions import DecisionRefused, StartRefused
from carevault.notify.letters import FontMissing
from carevault.notify.reporting import make_report
from carevault.notify.reports import REGULATORS, report_pdf
from carevault.web.console import notices
from carevault.web.console.guard import FormDep, OfficerDep, PollingOfficerDep, services
from carevault.web.console.incidents import incident_page
from carevault.web.console.render import is_htmx, malformed, page
from carevault.web.ids import RowId, row_id
from carevault.web.security import client_address

if TYPE_CHECKING:
    from carevault.bootstrap import Services

router = APIRouter()
#: The scope page lists at most this many patients; the download has them all.
LINES_SHOWN = 200
#: The scope page lists this many of the incident's latest runs.
RUNS_SHOWN = 20


def _refused(request: Request, problem: Exception) -> Response:
    missing = isinstance(problem, IncidentError) and not isinstance(problem, ScopeRunTampered)
    return page(
        request,
        "console/error.html",
        {"title_key": "scope.refused_title", "body_key": "scope.refused", "detail": str(problem)},
        status=404 if missing else 409,
        current="/console/incidents",
    )


def _figures(by_key: dict[str, dict[str, int]]) -> list[tuple[str, list[int]]]:
    keys = sorted({key for tier in TIERS for key in by_key[tier]})
    return [(key, [by_key[tier].get(key, 0) for tier in TIERS]) for key in keys]


def _kept_or_first(svc: Services, incident_id: int, actor: Actor, number: int | None) -> ScopeRun:
    """The run asked for (None: the latest kept); the first visit of an incident with no
    kept run computes one, as Recompute would."""
    try:
        return kept_scope(svc, incident_id, number)
    except ScopeRunMissing:
        if number is not None:
            raise
    return compute_scope(svc, incident_id, actor=actor)


class NotARun(ValueError):
    """``?run=`` names no run a scope can have (it was read as "the latest", silently)."""


def _run_number(request: Request) -> int | None:
    """The run asked for by ``?run=N``, or None (none asked: the latest)."""
    text = request.query_params.get("run")
    if text is None:
        return None
    number = row_id(text)
    if number is None:
        raise NotARun(text[:20])
    return number


def _since_run(svc: Services, run: ScopeRun, incident: dict[str, Any]) -> dict[str, Any]:
    """What happened after the run: audit entries appended since its own entry, and
    whether the incident (its window or what is compromised) was amended since."""
    document = run.document or {}
    header = document.get("incident", {})
    amended = any(header.get(key) != incident[key] for key in ("since", "until", "compromised"))
    head = svc.audit_ledger.store.head()[0]
    recorded = run.ledger_seq + 1 if run.ledger_seq is not None else head
    return {"newer_entries": max(0, head - recorded), "amended": amended, "head": head}


@router.get("/console/incidents/{incident_id}/scope")
async def scope(request: Request, incident_id: RowId, viewer: OfficerDep) -> Response:
    svc = services(request)
    actor = Actor(viewer.principal, client_address(request))
    try:
        number = _run_number(request)
    except NotARun:
        return malformed(request, "/console/incidents")

    def gather() -> dict[str, Any]:
        run = _kept_or_first(svc, incident_id, actor, number)
        incident = incidents_for(svc).get(incident_id).as_json()
        return {
            "run": run,
            "since_run": _since_run(svc, run, incident),
            "runs": runs.listing(svc.engine, incident_id, RUNS_SHOWN),
        }

    try:
        found = await run_in_threadpool(gather)
    except (IncidentError, SegmentRefused) as problem:
        return _refused(request, problem)
    run: ScopeRun = found["run"]
    document = run.document
    assert document is not None  # noqa: S101 - a read or computed run carries its document
    counts = document["counts"]
    # The tiers' lines, then those apart (records changed, registrations), each up to
    # ``LINES_SHOWN``: a full page of tiers hid every registration (review of stop 63).
    everyone = list(lines_of(document))
    apart = [(group, line) for group, line in everyone if group not in TIERS]
    tiered = everyone[: len(everyone) - len(apart)]
    lines = tiered[:LINES_SHOWN] + apart[:LINES_SHOWN]
    # The charts are the incidents package's own SVG (escaped there, no script).
    charts = {
        "time": Markup(_timeline(counts["by_day"])),  # noqa: S704
        "clinic": Markup(_bars(counts["by_clinic"])),  # noqa: S704
        "category": Markup(_bars(counts["by_category"])),  # noqa: S704
    }
    days = sorted({day for tier in TIERS for day in counts["by_day"][tier]})
    done = request.query_params.get("done", "")
    return page(
        request,
        "console/scope.html",
        {
            "title_key": "scope.title",
            "incident_id": incident_id,
            "document": document,
            "run": run.as_json(),
            "latest": found["runs"][0].number if found["runs"] else run.number,
            "runs": [item.as_json() for item in found["runs"]],
            "since_run": found["since_run"],
            "done": done == "recomputed",
            "tiers": TIERS,
            "charts": charts,
            "by_clinic": _figures(counts["by_clinic"]),
            "by_category": _figures(counts["by_category"]),
            "by_day": [
                (day, [counts["by_day"][tier].get(day, 0) for tier in TIERS]) for day in days
            ],
            "lines": lines,
            "more_lines": len(everyone) - len(lines),
        },
        current="/console/incidents",
    )


@router.post("/console/incidents/{incident_id}/scope")
async def recompute(
    request: Request, incident_id: RowId, viewer: OfficerDep, _form: FormDep
) -> Response:
    """A new run, computed now: ``compute_scope``, as ``carevault incident scope`` and the
    API run it, so it is kept and recorded in the ledger the same way."""
    svc = services(request)
    actor = Actor(viewer.principal, client_address(request))
    try:
        await run_in_threadpool(compute_scope, svc, incident_id, actor=actor)
    except (IncidentError, SegmentRefused) as problem:
        return _refused(request, problem)
    return RedirectResponse(
        f"/console/incidents/{incident_id}/scope?done=recomputed", status_code=303
    )


@router.get("/console/incidents/{incident_id}/scope.{fmt}")
async def scope_download(
    request: Request, incident_id: RowId, fmt: str, viewer: OfficerDep
) -> Response:
    """A kept run's whole report (html: self-contained, for the board; csv; json), as a
    file: the latest run, or ``?run=N``; the same document the page shows."""
    media = {"html": "text/html", "csv": "text/csv", "json": "application/json"}
    if fmt not in media:
        return _refused(request, IncidentError(f"no format {fmt[:10]!r}"))
    svc = services(request)
    actor = Actor(viewer.principal, client_address(request))
    try:
        number = _run_number(request)
    except NotARun:
        return malformed(request, "/console/incidents")
    try:
        run = await run_in_threadpool(_kept_or_first, svc, incident_id, actor, number)
    except (IncidentError, SegmentRefused) as problem:
        return _refused(request, problem)
    assert run.document is not None  # noqa: S101 - a read or computed run carries its document
    text = await run_in_threadpool(render, run.document, fmt)
    name = f"incident-{incident_id}-scope-run-{run.number}.{fmt}"
    return Response(
        text.encode("utf-8"),
        media_type=f"{media[fmt]}; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


@router.post("/console/incidents/{incident_id}/notices")
async def start_notices(
    request: Request, incident_id: RowId, viewer: OfficerDep, values: FormDep
) -> Response:
    """Notices speak to patients in the group's name: a fresh TOTP code first, as a
    containment switch needs (``notify:job:started`` names the officer)."""
    svc = services(request)
    try:
        await run_in_threadpool(incidents_for(svc).get, incident_id)
    except IncidentError as problem:
        return _refused(request, problem)
    try:
        await run_in_threadpool(
            notices.start, request.app, svc, str(incident_id), viewer.username,
            values.get("totp", ""), client_address(request),
        )  # fmt: skip
    except StartRefused:
        return await incident_page(request, incident_id, error="stepup.refused", status=403)
    return RedirectResponse(
        f"/console/incidents/{incident_id}?done=notices#notices", status_code=303
    )


@router.get("/console/incidents/{incident_id}/notices")
async def notice_progress(
    request: Request, incident_id: RowId, viewer: PollingOfficerDep
) -> Response:
    """The progress panel alone (the incident page polls it while the job runs): a poll
    needs a live session but does not keep it alive (``guard.polling_viewer``)."""
    svc = services(request)
    progress = await run_in_threadpool(notices.notices_of, request.app, svc, str(incident_id))
    if not is_htmx(request):
        return RedirectResponse(f"/console/incidents/{incident_id}#notices", status_code=303)
    return page(
        request,
        "console/notice_progress.html",
        {"incident_id": incident_id, "notices": progress},
    )


@router.get("/console/incidents/{incident_id}/reports/{regulator}.{fmt}")
async def regulator_report(
    request: Request, incident_id: RowId, regulator: str, fmt: str, viewer: OfficerDep
) -> Response:
    if regulator not in REGULATORS or fmt not in ("json", "pdf"):
        return _refused(request, IncidentError("no such report"))
    svc = services(request)

    def build() -> bytes:
        scope = scope_of(svc, str(incident_id), viewer.principal)
        report = make_report(svc, scope, regulator)
        if fmt == "json":
            return json.dumps(report, ensure_ascii=False, indent=2).encode("utf-8")
        return report_pdf(report, svc.settings.pdf_font)

    try:
        body = await run_in_threadpool(build)
    except (IncidentError, SegmentRefused) as problem:
        return _refused(request, problem)
    except FontMissing:
        return page(
            request,
            "console/error.html",
            {"title_key": "letter.no_font_title", "body_key": "letter.no_font"},
            status=503,
        )
    return Response(
        body,
        media_type="application/pdf" if fmt == "pdf" else "application/json",
        headers={"content-disposition": f'attachment; filename="{regulator}-{incident_id}.{fmt}"'},
    )


@router.post("/console/incidents/{incident_id}/decide")
async def decision(
    request: Request, incident_id: RowId, viewer: OfficerDep, values: FormDep
) -> Response:
    svc = services(request)
    try:
        await run_in_threadpool(
            decide,
            svc,
            str(incident_id),
            values.get("regulator", ""),
            values.get("decision", ""),
            values.get("reason", "")[:500],
            viewer.username,
            values.get("totp", ""),
        )
    except DecisionRefused as refused:
        return await incident_page(
            request, incident_id, error="incidents.decision_refused", detail=str(refused),
            status=403,
        )  # fmt: skip
    except ValueError as problem:
        return await incident_page(
            request, incident_id, error="incidents.invalid", detail=str(problem), status=400
        )
    return RedirectResponse(f"/console/incidents/{incident_id}?done=decided", status_code=303)
