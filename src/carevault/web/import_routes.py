"""``$import``: kick-off (FHIR NDJSON, asynchronous), status, cancel.

Mounted before the generic FHIR routes, as the export's are: ``/fhir/$import`` must not
be read as a resource type.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from carevault.fhir.outcome import FhirError, Issue, outcome
from carevault.importjobs.model import NDJSON_TYPES, Status, rejection
from carevault.importjobs.service import ImportService
from carevault.rest.bundles import dumps
from carevault.rest.capability import operation_definitions
from carevault.web.fhir_routes import base_url, body_media, read_body
from carevault.web.job_calls import job_call, job_failed
from carevault.web.prefer import respond_async
from carevault.web.responses import NO_STORE
from carevault.web.security import CallerDep, ServicesDep

router = APIRouter()

#: How long a client should wait between status polls.
RETRY_SECONDS = 5
_FHIR_JSON = "application/fhir+json"


def _service(svc: Any) -> ImportService:
    if svc.imports is None:
        raise FhirError(501, [Issue("not-supported", "$import is not available here")])
    imports: ImportService = svc.imports
    return imports


#: Where this server's OperationDefinitions are served (``$import``'s, ``$register``'s,
#: ``$transfer``'s): the app routes it before the read by id, ``fhir_routes.READ_PATH``,
#: which would take it for a read of a resource.
DEFINITION_PATH = "/fhir/OperationDefinition/{definition_id}"


async def import_definition_route(request: Request) -> Response:
    """What an operation in the CapabilityStatement is defined by (``$import`` and the
    Patient operations no IG defines): public, as the CapabilityStatement is (no patient
    data)."""
    found = operation_definitions(base_url(request)).get(request.path_params["definition_id"])
    if found is None:
        raise FhirError(404, [Issue("not-found", "no such OperationDefinition here")])
    return Response(dumps(found), headers=dict(NO_STORE), media_type=_FHIR_JSON)


@router.post("/fhir/$import")
async def kick_off(request: Request, svc: ServicesDep, who: CallerDep) -> Response:
    imports = _service(svc)
    if not respond_async(request):
        raise FhirError(400, [Issue("invalid", "$import needs the header Prefer: respond-async")])
    body_media(request, NDJSON_TYPES, "$import takes application/fhir+ndjson (one resource a line)")
    # Who may import is judged before the body is read.
    await job_call(imports.allowed, who)
    limit = imports.settings.max_bytes
    try:
        body = await read_body(request, limit)
    except FhirError as error:
        if error.status in (413, 415):
            reason = (
                f"the body is larger than {limit} bytes"
                if error.status == 413
                else error.issues[0].diagnostics
            )
            await job_call(imports.refuse, who, error.status, reason)
        raise
    job = await job_call(imports.kick_off, who, body)
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
    job = await job_call(imports.for_granted, who, job_id, "an import's status")
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
    if job.status is Status.CANCELLED:
        issues.append(
            Issue("informational", "cancelled: committed batches stay", severity="warning")
        )
    issues += [rejection(line, reason) for line, reason in report.rejections]
    if job.status is Status.FAILED:
        # What was committed before the failure stays; the counts and refusals say so.
        raise job_failed("the import", job.error, *issues)
    return Response(
        dumps(outcome(issues)), status_code=200, headers=dict(NO_STORE), media_type=_FHIR_JSON
    )


@router.delete("/fhir/$import-status/{job_id}")
async def import_cancel(job_id: str, svc: ServicesDep, who: CallerDep) -> Response:
    imports = _service(svc)
    # Unlike an export's (which only withholds what was to leave), cancelling an import
    # decides what is written: a token of the client that may not write may not.
    job = await job_call(imports.for_granted, who, job_id, "cancelling an import")
    if not await job_call(imports.cancel, job, who.principal, who.source_address):
        raise FhirError(409, [Issue("conflict", f"this import has already ended ({job.status})")])
    return Response(status_code=202, headers=dict(NO_STORE))
