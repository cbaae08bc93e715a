"""The patient access report (privacy officer only): find a patient by MRN or HKID,
see who opened their record, when and what categories, each line with its inclusion
proof, and download it as a PDF letter for a data access request under the PDPO.

Everything about the patient comes through the gate as the officer: the search by
identifier uses the blind index; what is shown is what the officer's role may read
(name and contact; never the HKID, birth date or anything clinical). Each search and
report is in the patient's own ledger, as an access by the officer, with its purpose.
"""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from carevault.console.sessions import LANGUAGES
from carevault.containment.state import ContainmentActive
from carevault.fhir.outcome import FhirError
from carevault.fhir.query import SearchError, parse_query
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import AccessDenied, Caller
from carevault.rest.interactions import ID_PATTERN
from carevault.vault.records import Gone, NotFound
from carevault.web.audit_routes import build_access_report
from carevault.web.console.guard import (
    PATIENT_PURPOSES,
    FormDep,
    OfficerDep,
    caller_for,
    services,
    stated_purpose,
)
from carevault.web.console.letter import LetterFontMissing, access_letter
from carevault.web.console.people import PatientCard, patient_card
from carevault.web.console.render import malformed, page

router = APIRouter()

#: Why the officer looks a patient up, recorded as the FHIR PurposeOfUse of the search.
PURPOSES = PATIENT_PURPOSES
MOST_FOUND = 20


@router.get("/console/patients")
async def finder(request: Request, viewer: OfficerDep) -> Response:
    return page(
        request,
        "console/patients.html",
        {"title_key": "patients.title", "found": None, "purposes": PURPOSES, "error": None},
        current="/console/patients",
    )


@router.post("/console/patients")
async def find(request: Request, viewer: OfficerDep, values: FormDep) -> Response:
    svc = services(request)
    identifier = values.get("identifier", "").strip()[:64]
    purpose = stated_purpose(values.get("purpose", ""))
    context: dict[str, Any] = {"title_key": "patients.title", "purposes": PURPOSES}
    if not identifier or purpose is None:
        return page(
            request,
            "console/patients.html",
            {**context, "found": None, "error": "patients.need_both"},
            status=400,
            current="/console/patients",
        )
    caller = caller_for(viewer, request, purpose)

    def search() -> list[PatientCard]:
        query = parse_query(
            RESOURCE_TYPES["Patient"],
            [("identifier", identifier), ("_count", str(MOST_FOUND))],
            strict=True,
            zone=ZoneInfo(svc.settings.timezone),
            default_count=MOST_FOUND,
            max_count=svc.settings.search_max_count,
        )
        found, _ = svc.gate.search(caller, query)
        return [
            patient_card(item.head.resource_id, json.loads(item.body or b"{}")) for item in found
        ]

    error = None
    try:
        found = await run_in_threadpool(search)
    except SearchError:
        found, error = [], "patients.bad_identifier"
    except ContainmentActive:
        found, error = [], "patients.offline"
    return page(
        request,
        "console/patients.html",
        {**context, "found": found, "error": error, "purpose": purpose},
        current="/console/patients",
    )


def _report(svc: Any, caller: Caller, patient_id: str) -> tuple[PatientCard | None, dict[str, Any]]:
    """The patient as the officer may see them (None if containment keeps the record
    offline: the report still stands without the name), and the report."""
    report = build_access_report(svc, caller, patient_id)
    try:
        opened = svc.gate.read(caller, RESOURCE_TYPES["Patient"], patient_id)
        card = patient_card(patient_id, json.loads(opened.body or b"{}"))
    except (ContainmentActive, AccessDenied, NotFound, Gone):
        card = None
    return card, report


async def _load(
    request: Request, viewer: Any, patient_id: str
) -> tuple[PatientCard | None, dict[str, Any]] | Response:
    svc = services(request)
    if not ID_PATTERN.fullmatch(patient_id):
        # Only a FHIR id opens a record (adversary round 61): the path had been cut to 64
        # characters to read, and named the download whole, its quotes and ``;`` too.
        return _unknown(request)
    purpose = stated_purpose(request.query_params.get("purpose"))
    if purpose is None:
        return _error(request, "patients.bad_purpose", 400)
    caller = caller_for(viewer, request, purpose)
    try:
        return await run_in_threadpool(_report, svc, caller, patient_id)
    except FhirError as error:
        if error.status == 429:
            # The report is a release of its patient (adversary round 51): past the
            # officer's budget it is refused, which is not "no such patient".
            return _error(request, "patients.budget", 429)
        return _unknown(request)


def _unknown(request: Request) -> Response:
    return _error(request, "patients.unknown", 404)


def _error(request: Request, key: str, status: int) -> Response:
    """The patients section's error page: the catalogue's ``key`` and ``key_title``."""
    return page(
        request,
        "console/error.html",
        {"title_key": f"{key}_title", "body_key": key},
        status=status,
        current="/console/patients",
    )


@router.get("/console/patients/{patient_id}")
async def report(request: Request, patient_id: str, viewer: OfficerDep) -> Response:
    loaded = await _load(request, viewer, patient_id)
    if isinstance(loaded, Response):
        return loaded
    card, built = loaded
    names = await run_in_threadpool(
        request.app.state.console_clinics.get, caller_for(viewer, request)
    )
    return page(
        request,
        "console/report.html",
        {
            "title_key": "report.title",
            "patient_id": patient_id,
            "card": card,
            "report": built,
            "clinics": names,
        },
        current="/console/patients",
    )


@router.get("/console/patients/{patient_id}/report.json")
async def report_json(request: Request, patient_id: str, viewer: OfficerDep) -> Response:
    """The report with every proof, for checking with the standalone verifier."""
    loaded = await _load(request, viewer, patient_id)
    if isinstance(loaded, Response):
        return loaded
    _, built = loaded
    return JSONResponse(
        built,
        headers={"content-disposition": f'attachment; filename="access-report-{patient_id}.json"'},
    )


@router.get("/console/patients/{patient_id}/letter.pdf")
async def letter(request: Request, patient_id: str, viewer: OfficerDep) -> Response:
    # A language the console does not write is refused, before the report is built: it
    # was written in English (``zh``: with the Chinese group name) without a word.
    asked = request.query_params.get("lang")
    if asked is not None and asked not in LANGUAGES:
        return malformed(request, "/console/patients")
    loaded = await _load(request, viewer, patient_id)
    if isinstance(loaded, Response):
        return loaded
    card, built = loaded
    svc = services(request)
    language = asked or viewer.language or "en"
    # A letter is signed and posted: its names come from the configuration, not from
    # Organization records (what anyone who may write one typed).
    chinese = language.startswith("zh")
    settings = svc.settings
    try:
        pdf = await run_in_threadpool(
            access_letter,
            card,
            built,
            language=language,
            zone=ZoneInfo(svc.settings.timezone),
            clinics=settings.clinic_names_in(language),
            group=settings.notify_group_name_zh if chinese else settings.notify_group_name,
            font=svc.settings.pdf_font,
            signed_by=viewer.display_name,
            made_us=svc.now_us(),
        )
    except LetterFontMissing:
        return page(
            request,
            "console/error.html",
            {"title_key": "letter.no_font_title", "body_key": "letter.no_font"},
            status=503,
        )
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"content-disposition": f'attachment; filename="access-report-{patient_id}.pdf"'},
    )
