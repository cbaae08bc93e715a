"""The privacy officer's containment switches over HTTP (for the console), blocked
address ranges at the door, and emergency access requests while PHI is offline."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from carevault.access.breakglass import BreakGlassError
from carevault.bootstrap import Services
from carevault.containment.service import ContainmentRefused
from carevault.containment.state import Containment, Mode
from carevault.db import on_the_loop
from carevault.fhir.outcome import FhirError, Issue, outcome
from carevault.gate import WouldBlock
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.rest.bundles import dumps
from carevault.rest.interactions import JSON
from carevault.web.audit_routes import request_grant
from carevault.web.health import HEALTH_PATHS
from carevault.web.ids import RowId
from carevault.web.officers import officer_code, require_officer
from carevault.web.paths import logged_path
from carevault.web.responses import NO_STORE, request_id_of
from carevault.web.security import CallerDep, ServicesDep

router = APIRouter()


class StartRequest(BaseModel):
    mode: Mode
    target: Annotated[str | None, Field(max_length=200)] = None
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    totp: Annotated[str, Field(min_length=6, max_length=8)]


class ReleaseRequest(BaseModel):
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    totp: Annotated[str, Field(min_length=6, max_length=8)]


class ApproveRequest(BaseModel):
    totp: Annotated[str, Field(min_length=6, max_length=8)]


def _view(item: Containment) -> dict[str, Any]:
    return {
        "id": item.containment_id,
        "mode": item.mode.value,
        "target": item.target,
        "reason": item.reason,
        "started_us": item.started_us,
        "started_by": item.started_by,
        "released_us": item.released_us,
        "released_by": item.released_by,
    }


async def _act(call: Any, *args: Any) -> Any:
    try:
        return await run_in_threadpool(call, *args)
    except ContainmentRefused as refused:
        raise FhirError(403, [Issue("forbidden", str(refused))]) from None
    except (ValueError, BreakGlassError) as error:
        raise FhirError(400, [Issue("invalid", str(error))]) from None


@router.get("/admin/containment")
async def containment_state(svc: ServicesDep, who: CallerDep) -> JSONResponse:
    require_officer(who, "see containment")
    history = await run_in_threadpool(svc.containment.history)
    pending = await run_in_threadpool(svc.break_glass.pending)
    return JSONResponse(
        {
            "active": [_view(item) for item in history if item.active],
            "history": [_view(item) for item in history],
            "emergency_requests": [
                {"grant": item.grant_id, "reason": item.reason.value} for item in pending
            ],
        },
        headers=NO_STORE,
    )


@router.post("/admin/containment")
async def start(body: StartRequest, svc: ServicesDep, who: CallerDep) -> JSONResponse:
    officer = officer_code(who, body.totp, "contain")
    started = await _act(svc.contain.start, officer, body.mode, body.target, body.reason)
    return JSONResponse(_view(started), status_code=201, headers=NO_STORE)


@router.post("/admin/containment/{containment_id}/release")
async def release(
    containment_id: RowId, body: ReleaseRequest, svc: ServicesDep, who: CallerDep
) -> JSONResponse:
    officer = officer_code(who, body.totp, "release containment")
    released = await _act(svc.contain.release, officer, containment_id, body.reason)
    return JSONResponse(_view(released), headers=NO_STORE)


@router.post("/admin/emergency/{grant_id}/approve")
async def approve(
    grant_id: str, body: ApproveRequest, svc: ServicesDep, who: CallerDep
) -> JSONResponse:
    officer = officer_code(who, body.totp, "approve emergency access")
    grant = await _act(svc.contain.approve_emergency, officer, grant_id)
    return JSONResponse({"grant": grant.grant_id, "expires_us": grant.expires_us}, headers=NO_STORE)


@router.post("/fhir/Patient/{patient_id}/$emergency-access")
async def emergency_access(
    patient_id: str, request: Request, svc: ServicesDep, who: CallerDep
) -> Response:
    """While patient data is offline, a clinician asks to reach one patient's record; a
    privacy officer other than the one who took data offline must approve it."""
    grant = await request_grant(request, svc, who, patient_id, emergency=True)
    result = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "grant", "valueString": grant.grant_id},
            {"name": "status", "valueCode": "awaiting-approval"},
        ],
    }
    return Response(dumps(result), status_code=202, media_type=JSON, headers=NO_STORE)


class BlockedAddresses:
    """ASGI middleware: requests from a blocked range are refused before anything else."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in HEALTH_PATHS:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else None
        containment = self.services.containment
        try:
            # Every request passes here first: what the store holds answers on the loop;
            # a stale state is read again in a worker thread (a pool round trip on the
            # loop would stall every request the process serves).
            with on_the_loop():
                state = containment.current()
        except WouldBlock:
            state = await run_in_threadpool(containment.current)
        if not state.blocked(address):
            await self.app(scope, receive, send)
            return
        await run_in_threadpool(
            self.services.audit.record,
            [
                AuditEvent(
                    tag=Tag.CONTAIN_BLOCKED,
                    outcome=Outcome.DENIED,
                    at_us=self.services.now_us(),
                    request_id=request_id_of(scope),
                    source_address=address,
                    reason="source address is blocked",
                    detail={"path": logged_path(scope)},
                )
            ],
        )
        body = dumps(outcome([Issue("forbidden", "requests from this address are blocked")]))
        response = Response(body, status_code=403, media_type=JSON, headers=NO_STORE)
        await response(scope, receive, send)
