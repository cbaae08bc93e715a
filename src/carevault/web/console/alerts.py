"""Alerts (privacy officer only): the cases the detectors opened, each alert with its
plain-language explanation and its evidence entries (each with an inclusion proof),
and what the officer does about it.

Acknowledge and dismiss go through ``AlertDesk.handle`` (as ``carevault alerts ack``
and ``/admin/alerts/{id}/ack``: a fresh TOTP code, the same ledger entries, refusals
included); containing the account is the containment page's account suspension (a
fresh code again); declaring an incident is ``declare_case`` with the alert's case,
as ``carevault incident declare --from-alert``. Patients appear only as a count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, RedirectResponse, Response

from carevault.bootstrap import Services
from carevault.clock import from_micros
from carevault.detect import alert_case
from carevault.detect.alerts import STATUSES, Alert
from carevault.detect.desk import OfficerCode, OfficerRefused
from carevault.detect.model import Severity
from carevault.detect.service import Detection
from carevault.incidents import Actor, IncidentError, declare_case
from carevault.web.console.evidence import MOST_DOWNLOADED, alert_evidence
from carevault.web.console.guard import FormDep, OfficerDep, services
from carevault.web.console.incidents import local_instant
from carevault.web.console.render import page
from carevault.web.security import client_address

router = APIRouter()
#: How far before an alert the declare form starts the window by default.
LOOKBACK_US = 24 * 3600 * 1_000_000
SEVERITIES = tuple(reversed(Severity))


@dataclass(frozen=True)
class Case:
    key: str
    who: str
    alerts: tuple[Alert, ...]

    @property
    def severity(self) -> Severity:
        return max((alert.severity for alert in self.alerts), key=lambda s: s.rank)

    @property
    def latest_us(self) -> int:
        return max(alert.updated_us for alert in self.alerts)


def cases_of(alerts: list[Alert]) -> list[Case]:
    """Alerts grouped by case, the most severe case first, then the most recent."""
    grouped: dict[str, list[Alert]] = {}
    for alert in alerts:
        grouped.setdefault(alert.case_key, []).append(alert)
    cases = [
        Case(
            key,
            items[0].account or items[0].client or key.removeprefix("case:"),
            tuple(sorted(items, key=lambda a: (-a.severity.rank, -a.alert_id))),
        )
        for key, items in grouped.items()
    ]
    return sorted(cases, key=lambda case: (-case.severity.rank, -case.latest_us))


def open_by_severity(detection: Detection | None) -> dict[str, int]:
    """Open alert cases counted by their most severe open alert (for the dashboard)."""
    counts = {str(severity): 0 for severity in SEVERITIES}
    if detection is None:
        return counts
    for case in cases_of(detection.alerts.list(status="open")):
        counts[str(case.severity)] += 1
    return counts


def _detection(svc: Services) -> Detection | None:
    return svc.detection


@router.get("/console/alerts")
async def alert_list(request: Request, viewer: OfficerDep) -> Response:
    svc = services(request)
    wanted = request.query_params.get("status", "open")
    if wanted != "all" and wanted not in STATUSES:
        # A mistyped status showed every alert under no tab: say so instead.
        return page(
            request,
            "console/error.html",
            {"title_key": "alerts.bad_status_title", "body_key": "alerts.bad_status"},
            status=400,
            current="/console/alerts",
        )
    status = wanted if wanted in STATUSES else None
    detection = _detection(svc)

    def gather() -> dict[str, Any]:
        if detection is None:
            return {"running": False, "cases": [], "counts": {}}
        everything = detection.alerts.list()
        found = [alert for alert in everything if status is None or alert.status == status]
        return {
            "running": True,
            "cases": cases_of(found),
            "counts": {
                state: sum(1 for alert in everything if alert.status == state) for state in STATUSES
            },
        }

    context = await run_in_threadpool(gather)
    return page(
        request,
        "console/alerts.html",
        {
            "title_key": "alerts.title",
            "status": status or "all",
            "statuses": STATUSES,
            "severities": [str(s) for s in SEVERITIES],
            **context,
        },
        current="/console/alerts",
    )


async def _alert_page(
    request: Request, alert_id: str, *, error: str | None = None, status: int = 200
) -> Response:
    svc = services(request)
    detection = _detection(svc)
    if detection is None:
        return _missing(request)

    def gather() -> dict[str, Any] | None:
        try:
            alert = detection.alerts.get(alert_id)
        except KeyError:
            return None
        others = [a for a in detection.alerts.list(case=alert.case_key) if a != alert]
        return {
            "alert": alert,
            "since": window_start(
                min([alert, *others], key=lambda a: a.raised_us), ZoneInfo(svc.settings.timezone)
            ),
            "others": others,
            "evidence": alert_evidence(svc.audit_ledger, alert),
            "suspended": alert.account is not None
            and any(
                account.suspended
                for account in svc.accounts.all()
                if account.username == alert.account
            ),
        }

    context = await run_in_threadpool(gather)
    if context is None:
        return _missing(request)
    done = request.query_params.get("done")
    return page(
        request,
        "console/alert.html",
        {
            "title_key": "alerts.one_title",
            "error": error,
            "done": done if done in ("acknowledged", "dismissed") else None,
            **context,
        },
        status=status,
        current="/console/alerts",
    )


def _missing(request: Request) -> Response:
    return page(
        request,
        "console/error.html",
        {"title_key": "alerts.unknown_title", "body_key": "alerts.unknown"},
        status=404,
        current="/console/alerts",
    )


@router.get("/console/alerts/{alert_id}")
async def alert_page(request: Request, alert_id: str, viewer: OfficerDep) -> Response:
    return await _alert_page(request, alert_id[:20])


@router.get("/console/alerts/{alert_id}/evidence.json")
async def evidence_json(request: Request, alert_id: str, viewer: OfficerDep) -> Response:
    """Every entry of the alert's range with its proof, for the standalone verifier."""
    svc = services(request)
    detection = _detection(svc)
    if detection is None:
        return _missing(request)

    def gather() -> dict[str, Any] | None:
        try:
            alert = detection.alerts.get(alert_id[:20])
        except KeyError:
            return None
        return alert_evidence(svc.audit_ledger, alert, MOST_DOWNLOADED).as_json(alert)

    built = await run_in_threadpool(gather)
    if built is None:
        return _missing(request)
    return JSONResponse(
        built,
        headers={"content-disposition": f'attachment; filename="alert-{built["alert"]}.json"'},
    )


async def _handle(request: Request, alert_id: str, status: str, values: dict[str, str]) -> Response:
    svc = services(request)
    detection = _detection(svc)
    viewer = request.state.viewer
    if detection is None:
        return _missing(request)
    reason = values.get("reason", "").strip()[:500]
    if status == "dismissed" and not reason:
        return await _alert_page(request, alert_id, error="alerts.reason_needed", status=400)
    officer = OfficerCode(viewer.username, values.get("totp", ""), client_address(request))
    try:
        handled = await run_in_threadpool(
            detection.desk.handle, officer, alert_id[:20], status, reason or status
        )
    except KeyError:
        return _missing(request)
    except OfficerRefused:
        return await _alert_page(request, alert_id, error="stepup.refused", status=403)
    return RedirectResponse(f"/console/alerts/{handled.alert_id}?done={status}", status_code=303)


@router.post("/console/alerts/{alert_id}/acknowledge")
async def acknowledge(
    request: Request, alert_id: str, viewer: OfficerDep, values: FormDep
) -> Response:
    return await _handle(request, alert_id, "acknowledged", values)


@router.post("/console/alerts/{alert_id}/dismiss")
async def dismiss(request: Request, alert_id: str, viewer: OfficerDep, values: FormDep) -> Response:
    return await _handle(request, alert_id, "dismissed", values)


def window_start(alert: Alert, zone: ZoneInfo) -> str:
    """The declare form's default start of the window, as ``datetime-local`` text: a day
    before the alert was raised. An alert comes after the reads that raised it (the
    release budget counts a day of them), so its case's own start would leave them out."""
    start = from_micros(alert.raised_us - LOOKBACK_US).astimezone(zone)
    return start.strftime("%Y-%m-%dT%H:%M")


@router.post("/console/alerts/{alert_id}/declare")
async def declare(request: Request, alert_id: str, viewer: OfficerDep, values: FormDep) -> Response:
    """An incident from the alert's case (its accounts, clients, addresses and window, as
    ``carevault incident declare --from-alert``), from the start the officer gave
    (``--since``)."""
    svc = services(request)
    if _detection(svc) is None:
        return _missing(request)
    actor = Actor(viewer.principal, client_address(request))
    zone = ZoneInfo(svc.settings.timezone)

    def run() -> int | None:
        try:
            case = alert_case(svc, alert_id[:20])
        except KeyError:
            return None
        since = local_instant(values.get("since", ""), zone, "since")
        if since is not None:
            case["since"] = since
        return declare_case(svc, actor, case, alert_id=alert_id[:20]).incident_id

    try:
        incident_id = await run_in_threadpool(run)
    except IncidentError:
        return await _alert_page(request, alert_id, error="alerts.declare_refused", status=400)
    if incident_id is None:
        return _missing(request)
    return RedirectResponse(f"/console/incidents/{incident_id}?done=declared", status_code=303)
