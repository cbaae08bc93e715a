"""Bulk Data ``$export`` (kick-off, status, files) and the officers' export desk.

Mounted before the generic FHIR routes: ``/fhir/Patient/$export`` must not be read as
a read of the Patient whose id is ``$export``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from carevault.clock import http_date
from carevault.containment.service import ContainmentRefused
from carevault.export.model import (
    NDJSON,
    Level,
    Status,
    as_dict,
    manifest,
)
from carevault.export.service import ExportService
from carevault.fhir.outcome import FhirError, Issue, outcome
from carevault.gate import Caller
from carevault.ledger.events import Tag
from carevault.rest.bundles import dumps
from carevault.web.fhir_routes import base_url, parameter_parts, query_params
from carevault.web.job_calls import job_call, job_failed
from carevault.web.officers import officer_code, require_officer
from carevault.web.prefer import respond_async
from carevault.web.responses import NO_STORE
from carevault.web.security import CallerDep, ServicesDep
from carevault.web.statuses import status_filter

router = APIRouter()

#: How long a client should wait between status polls.
RETRY_SECONDS = 5
#: A POST kick-off's body: room for ``MAX_PATIENTS`` ``patient`` references with the
#: longest ids, pretty-printed, so that a list past the bound is refused naming the bound
#: (400), not for its size (413).
KICK_OFF_BODY_BYTES = 512 * 1024


class ApproveRequest(BaseModel):
    totp: Annotated[str, Field(min_length=6, max_length=8)]


class EndRequest(BaseModel):
    totp: Annotated[str, Field(min_length=6, max_length=8)]
    reason: Annotated[str, Field(min_length=1, max_length=500)]


def _service(svc: Any) -> ExportService:
    if svc.exports is None:
        raise FhirError(501, [Issue("not-supported", "bulk export is not available here")])
    exports: ExportService = svc.exports
    return exports


async def _call(call: Callable[..., Any], *args: Any) -> Any:
    """``job_call``, and an officer's refusals and conflicts (the export desk)."""
    try:
        return await job_call(call, *args)
    except ContainmentRefused as refused:
        raise FhirError(403, [Issue("forbidden", str(refused))]) from None
    except ValueError as error:
        raise FhirError(409, [Issue("conflict", str(error))]) from None


async def _kick_off(
    request: Request, svc: Any, who: Caller, level: Level, group_id: str | None
) -> Response:
    exports = _service(svc)
    try:
        if not respond_async(request):
            raise FhirError(
                400, [Issue("invalid", "$export needs the header Prefer: respond-async")]
            )
        # Every part of a POST's body, repeats and value types kept: the service applies
        # each as the same parameter in the query string, or refuses the kick-off.
        body = (
            await parameter_parts(request, KICK_OFF_BODY_BYTES) if request.method == "POST" else []
        )
    except FhirError as error:
        # Refused before the service saw it: recorded as every refused export is (an
        # officer watching exports sees a staff token's malformed POST too).
        reason = "; ".join(issue.diagnostics for issue in error.issues)[:500]
        await run_in_threadpool(
            exports.record_refusal, Tag.EXPORT_REFUSED, who, reason, level=str(level)
        )
        raise
    params = query_params(request)
    # The request as the manifest names it: on the configured base, never the Host header.
    asked = base_url(request) + request.url.path.removeprefix("/fhir")
    if request.url.query:
        asked += f"?{request.url.query}"
    job = await _call(exports.kick_off, who, level, group_id, params, asked, body)
    status_url = f"{base_url(request)}/$export-status/{job.job_id}"
    note = "accepted: the export waits for privacy officer approval" + (
        " (two officers)" if job.approvals_needed > 1 else ""
    )
    return Response(
        dumps(outcome([Issue("informational", note, severity="information")])),
        status_code=202,
        headers={**NO_STORE, "Content-Location": status_url},
        media_type="application/fhir+json",
    )


@router.get("/fhir/$export")
@router.post("/fhir/$export")
async def system_export(request: Request, svc: ServicesDep, who: CallerDep) -> Response:
    return await _kick_off(request, svc, who, Level.SYSTEM, None)


@router.get("/fhir/Patient/$export")
@router.post("/fhir/Patient/$export")
async def patient_export(request: Request, svc: ServicesDep, who: CallerDep) -> Response:
    return await _kick_off(request, svc, who, Level.PATIENT, None)


@router.get("/fhir/Group/{group_id}/$export")
@router.post("/fhir/Group/{group_id}/$export")
async def group_export(
    group_id: str, request: Request, svc: ServicesDep, who: CallerDep
) -> Response:
    return await _kick_off(request, svc, who, Level.GROUP, group_id)


@router.get("/fhir/$export-status/{job_id}")
async def export_status(
    job_id: str, request: Request, svc: ServicesDep, who: CallerDep
) -> Response:
    exports = _service(svc)
    job, held = await _call(exports.poll, who, job_id)
    if job.status is Status.COMPLETED and held is None:
        files = await run_in_threadpool(exports.output, job)
        body = manifest(job, files, f"{base_url(request)}/$export-file/{job.job_id}")
        headers = dict(NO_STORE)
        if job.expires_us:
            # An HTTP-date (RFC 9110 5.6.7), as every HTTP header's time: not an instant.
            headers["Expires"] = http_date(job.expires_us)
        return JSONResponse(body, headers=headers)
    if job.status is Status.FAILED:
        raise job_failed("the export", job.error)
    # Running, queued or awaiting approval; or complete with its files held by
    # containment: a manifest then would send the client on to fetch files each answered
    # 503 (integrator round 85), so it polls again, as for a running job, until released.
    return Response(
        status_code=202,
        headers={
            **NO_STORE,
            "X-Progress": job.progress(held),
            "Retry-After": str(RETRY_SECONDS),
        },
    )


@router.delete("/fhir/$export-status/{job_id}")
async def export_cancel(job_id: str, svc: ServicesDep, who: CallerDep) -> Response:
    exports = _service(svc)
    await _call(exports.for_client, who, job_id)
    await _call(
        exports.cancel, job_id, who.principal, "cancelled by the client", who.source_address
    )
    return Response(status_code=202, headers=dict(NO_STORE))


@router.get("/fhir/$export-file/{job_id}/{name}")
async def export_file(job_id: str, name: str, svc: ServicesDep, who: CallerDep) -> Response:
    exports = _service(svc)
    body = await _call(exports.download, who, job_id, name)
    return Response(body, headers=dict(NO_STORE), media_type=NDJSON)


# --- the privacy officer's desk ------------------------------------------------------------


@router.get("/admin/exports")
async def list_exports(svc: ServicesDep, who: CallerDep, status: str | None = None) -> JSONResponse:
    require_officer(who, "see exports")
    wanted = status_filter(status, [item.value for item in Status])
    jobs = await run_in_threadpool(_service(svc).jobs.all, [wanted] if wanted else None)
    return JSONResponse([as_dict(job) for job in jobs], headers=dict(NO_STORE))


@router.get("/admin/exports/{job_id}")
async def show_export(job_id: str, svc: ServicesDep, who: CallerDep) -> JSONResponse:
    require_officer(who, "see exports")
    job = await _call(_service(svc).job, job_id)
    return JSONResponse(as_dict(job), headers=dict(NO_STORE))


@router.post("/admin/exports/{job_id}/approve")
async def approve_export(
    job_id: str, body: ApproveRequest, svc: ServicesDep, who: CallerDep
) -> JSONResponse:
    officer = officer_code(who, body.totp, "approve exports")
    job = await _call(_service(svc).approve, officer, job_id, who.session_id)
    return JSONResponse(as_dict(job), headers=dict(NO_STORE))


@router.post("/admin/exports/{job_id}/deny")
async def deny_export(
    job_id: str, body: EndRequest, svc: ServicesDep, who: CallerDep
) -> JSONResponse:
    officer = officer_code(who, body.totp, "deny exports")
    job = await _call(_service(svc).deny, officer, job_id, body.reason)
    return JSONResponse(as_dict(job), headers=dict(NO_STORE))


@router.post("/admin/exports/{job_id}/cancel")
async def cancel_export(
    job_id: str, body: EndRequest, svc: ServicesDep, who: CallerDep
) -> JSONResponse:
    exports = _service(svc)
    officer = officer_code(who, body.totp, "cancel exports")
    by = await _call(exports.officer, officer, f"cancel export {job_id}")
    job = await _call(exports.cancel, job_id, by, body.reason, who.source_address)
    return JSONResponse(as_dict(job), headers=dict(NO_STORE))
