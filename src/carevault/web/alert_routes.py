"""``/admin/alerts``: the detectors' alerts for a signed-in privacy officer (JSON in the
shape of ``carevault alerts list --json``); acknowledging or dismissing needs a TOTP."""

from __future__ import annotations

from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from carevault.bootstrap import Services
from carevault.detect.alerts import STATUSES
from carevault.detect.desk import OfficerCode, OfficerRefused
from carevault.detect.listing import PollRefused, described, poll
from carevault.detect.service import Detection
from carevault.fhir.outcome import FhirError, Issue
from carevault.gate import Caller
from carevault.web.officers import require_officer
from carevault.web.responses import NO_STORE
from carevault.web.security import CallerDep, ServicesDep
from carevault.web.statuses import status_filter

router = APIRouter()


class HandleRequest(BaseModel):
    reason: Annotated[str, Field(max_length=500)] = ""
    totp: Annotated[str, Field(min_length=6, max_length=8)]


def _officer_only(svc: Services, who: Caller) -> Detection:
    require_officer(who, "see alerts")
    if svc.detection is None:
        raise FhirError(503, [Issue("transient", "detection is not running")])
    return svc.detection


@router.get("/admin/alerts")
async def list_alerts(
    svc: ServicesDep,
    who: CallerDep,
    status: str | None = None,
    since: str | None = None,
    after: str | None = None,
) -> JSONResponse:
    """``since`` (ISO 8601: alerts raised, widened or escalated since) and ``after`` (an
    alert id: those numbered above it) as ``alerts list --since/--after``; a bad value
    is ``400``."""
    detection = _officer_only(svc, who)
    try:
        wanted = poll(
            status_filter(status, STATUSES), since, after, ZoneInfo(svc.settings.timezone)
        )
    except PollRefused as refused:
        raise FhirError(400, [Issue("invalid", str(refused))]) from None

    def listed() -> list[dict[str, Any]]:
        found = detection.alerts.list(
            status=wanted.status,
            after_id=wanted.after_id,
            changed_since_us=wanted.changed_since_us,
        )
        return described(found, svc.audit_ledger.store)

    return JSONResponse({"alerts": await run_in_threadpool(listed)}, headers=NO_STORE)


@router.get("/admin/alerts/{alert_id}")
async def show_alert(alert_id: str, svc: ServicesDep, who: CallerDep) -> JSONResponse:
    detection = _officer_only(svc, who)
    try:
        alert = await run_in_threadpool(detection.alerts.get, alert_id)
    except KeyError:
        raise FhirError(404, [Issue("not-found", f"no alert {alert_id}")]) from None
    (shown,) = await run_in_threadpool(described, [alert], svc.audit_ledger.store)
    return JSONResponse({**shown, "patients": list(alert.patients)}, headers=NO_STORE)


async def _handle(
    alert_id: str, status: str, body: HandleRequest, svc: Services, who: Caller
) -> Any:
    detection = _officer_only(svc, who)
    officer = OfficerCode(who.principal.removeprefix("staff:"), body.totp, who.source_address)
    try:
        handled = await run_in_threadpool(
            detection.desk.handle, officer, alert_id, status, body.reason
        )
    except KeyError:
        raise FhirError(404, [Issue("not-found", f"no alert {alert_id}")]) from None
    except OfficerRefused as refused:
        raise FhirError(403, [Issue("forbidden", str(refused))]) from None
    (shown,) = await run_in_threadpool(described, [handled], svc.audit_ledger.store)
    return JSONResponse(shown, headers=NO_STORE)


@router.post("/admin/alerts/{alert_id}/ack")
async def ack(alert_id: str, body: HandleRequest, svc: ServicesDep, who: CallerDep) -> Any:
    return await _handle(alert_id, "acknowledged", body, svc, who)


@router.post("/admin/alerts/{alert_id}/dismiss")
async def dismiss(alert_id: str, body: HandleRequest, svc: ServicesDep, who: CallerDep) -> Any:
    return await _handle(alert_id, "dismissed", body, svc, who)
