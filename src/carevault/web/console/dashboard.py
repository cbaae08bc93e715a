"""The dashboard: open alert cases by severity and whether the detectors are judging
the ledger, the regulators' deadline clocks of
open incidents, containment now, ledger health, the key provider, activity by clinic.

Privacy officer and clinic managers; a clinic manager's activity chart counts only
accesses made from their own clinics. Alerts and clocks are counts and dates only.
"""

from __future__ import annotations

import threading
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from carevault.incidents import incidents_for
from carevault.incidents.model import Status
from carevault.web.console.alerts import open_by_severity
from carevault.web.console.chart import stacked_bars
from carevault.web.console.guard import FormDep, ManagerDep, OfficerDep, caller_for, services
from carevault.web.console.notices import clocks_of
from carevault.web.console.overview import (
    OTHER,
    SEVERAL,
    SYSTEM,
    activity,
    key_status,
    ledger_health,
)
from carevault.web.console.render import page, translator
from carevault.web.console.staff import containment_shown

router = APIRouter()
_verifying = threading.Lock()


@router.get("/console/dashboard")
async def dashboard(request: Request, viewer: ManagerDep) -> Response:
    svc = services(request)
    t = translator(request, viewer)
    zone = ZoneInfo(svc.settings.timezone)
    caller = caller_for(viewer, request)

    def gather() -> dict[str, object]:
        closed = {str(item.incident_id) for item in incidents_for(svc).all(Status.CLOSED)}
        names = {
            **request.app.state.console_clinics.get(caller),
            SYSTEM: t("chart.system"),
            SEVERAL: t("chart.several"),
            OTHER: t("chart.other"),
        }
        busy = activity(svc, viewer, names, zone)
        return {
            "open_alerts": open_by_severity(svc.detection) if svc.detection else None,
            "detectors": svc.detection.engine.progress() if svc.detection else None,
            "clocks": [
                clock
                for clock in clocks_of(svc)
                if clock["decision"] is None and clock["incident_id"] not in closed
            ],
            "containment": containment_shown(
                viewer, svc.containment.refresh().active, svc.accounts.all(), svc.clients.all()
            ),
            "ledgers": ledger_health(svc),
            "keys": key_status(svc),
            "activity": busy,
            "chart": stacked_bars(
                busy.hour_labels,
                busy.series,
                title=t("dashboard.chart_title"),
                description=t("dashboard.chart_desc", total=busy.total),
            ),
        }

    context = await run_in_threadpool(gather)
    return page(
        request,
        "console/dashboard.html",
        {"title_key": "dashboard.title", **context},
        current="/console/dashboard",
    )


@router.post("/console/dashboard/verify")
async def verify_now(request: Request, viewer: OfficerDep, _form: FormDep) -> Response:
    """Start a full verification of both ledgers in the background; the dashboard shows
    it running, then its result. One at a time per process."""
    svc = services(request)
    if _verifying.acquire(blocking=False):

        def run() -> None:
            try:
                for ledger in svc.ledgers():
                    svc.verify_runs.verify(ledger, viewer.principal)
            finally:
                _verifying.release()

        threading.Thread(target=run, name="console-verify", daemon=True).start()
    return RedirectResponse("/console/dashboard#ledgers", status_code=303)
