"""``$import``: kick-off (FHIR NDJSON, asynchronous), status, cancel.

Mounted before the generic FHIR routes, as the export's are: ``/fhir/$import`` must not
be read as a resource type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from carevault.fhir.outcome import FhirError, Issue, outcome
from carevault.importjobs.model import NDJSON_TYPES, ImportNotFound, ImportRefused, Status
from carevault.importjobs.service import ImportService
from carevault.rest.bundles import dumps
from carevault.web.fhir_routes import base_url, read_body
from carevault.web.responses import NO_STORE
from carevault.web.security import CallerDep, ServicesDep

router = APIRouter()

#: How long a client should wait between status polls.
RETRY_SECONDS = 5
_REFUSAL_CODES = {
    400: "invalid",
    403: "forbidden",
    404: "not-found",
    413: "too-long",
    415: "not-supported",
    503: "transient",
}
_FHIR_JSON = "application/fhir+json"


def _service(svc: Any) -> ImportService:
    if svc.imports is None:
        raise FhirError(501, [Issue("not-supported", "$import is not available here")])
    imports: ImportService = svc.imports
    return imports


async def _call(call: Callable[..., Any], *args: Any) -> Any:
    try:
        return await run_in_threadpool(call, *args)
    except ImportRefused as refused:
        code = _REFUSAL_CODES.get(refused.status, "invalid")
        raise FhirError(refused.status, [Issue(code, str(refused))]) from None
    except ImportNotFound as missing:
        raise FhirError(404, [Issue("not-found", str(missing))]) from None


@router.post("/fhir/$import")
async def kick_off(request: Request, svc: ServicesDep, who: CallerDep) -> Response:
    imports = _service(svc)
    prefer = [part.strip() for part in request.headers.get("prefer", "").split(",")]
    if "respond-async" not in prefer:
        raise FhirError(400, [Issue("invalid", "$import needs the header Prefer: respond-async")])
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in NDJSON_TYPES:
        raise FhirError(
            415,
            [Issue("not-supported", "$import takes application/fhir+ndjson (one resource a line)")],
        )
    # Who may import is judged before the body is read.
    await _call(imports.allowed, who)
    limit = imports.settings.max_bytes
    try:
        body = await read_body(request, limit)
    except FhirError as error:
        if error.status == 413:
            await _call(imports.refuse, who, 413, f"the body is larger than {limit} bytes")
        raise
    job = await _call(imports.kick_off, who, body)
    note = f"accepted: {job.lines_total} lines queued for import"
    return Response(
        dumps(outcome([Issue("informational", note, severity="information")])),
        status_code=202,
        headers={
            **NO_STORE,
            "Content-Location": f"{base_url(request)}/$import-status/{job.job_id}",
        },
        media_type=_FHIR_JSON,
    )


@router.get("/fhir/$import-status/{job_id}")
async def import_status(job_id: str, svc: ServicesDep, who: CallerDep) -> Response:
    imports = _service(svc)
    job = await _call(imports.for_client, who, job_id)
    report = await run_in_threadpool(imports.report, job)
    if job.status in (Status.QUEUED, Status.RUNNING):
        progress = (
            "queued"
            if job.status is Status.QUEUED
            else f"{report.lines_done} of {report.lines_total} lines"
        )
        held = await run_in_threadpool(
            imports.held, await run_in_threadpool(imports.clinics, job_id)
        )
        if held is not None:
            progress = f"held: {held} ({progress})"
        return Response(
            status_code=202,
            headers={**NO_STORE, "X-Progress": progress, "Retry-After": str(RETRY_SECONDS)},
        )
    summary = (
        f"import {job.status}: {report.accepted} accepted, {report.rejected} rejected,"
        f" {report.lines_done} of {report.lines_total} lines done"
    )
    issues = [Issue("informational", summary, severity="information")]
    if job.status is Status.FAILED:
        issues.append(Issue("exception", job.error or "the import failed"))
    elif job.status is Status.CANCELLED:
        issues.append(
            Issue("informational", "cancelled: committed batches stay", severity="warning")
        )
    issues += [
        Issue("invalid", reason, expression=(f"line {line}",)) for line, reason in report.rejections
    ]
    return Response(
        dumps(outcome(issues)), status_code=200, headers=dict(NO_STORE), media_type=_FHIR_JSON
    )


@router.delete("/fhir/$import-status/{job_id}")
async def import_cancel(job_id: str, svc: ServicesDep, who: CallerDep) -> Response:
    imports = _service(svc)
    job = await _call(imports.for_client, who, job_id)
    if not await _call(imports.cancel, job, who.principal, who.source_address):
        raise FhirError(409, [Issue("conflict", f"this import has already ended ({job.status})")])
    return Response(status_code=202, headers=dict(NO_STORE))
