"""The audit ledger over HTTP: signed checkpoints and proofs for anyone who checks the
evidence, AuditEvent search and patient access reports for the privacy officer, and
break-the-glass for clinicians."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import replace
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from carevault.access.breakglass import Grant
from carevault.bootstrap import Services
from carevault.clock import fhir_instant, from_micros
from carevault.detect.budget import ReleaseRefused
from carevault.fhir.outcome import FhirError, Issue
from carevault.gate import Caller, caller_event
from carevault.ledger.audit import AuditQuery, access_report, count_matching, matching
from carevault.ledger.checkpoints import StoredCheckpoint
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.export import fhir_audit_event
from carevault.ledger.service import Ledger, OutOfRange
from carevault.ledger.store import LedgerCorrupt
from carevault.rest.bundles import dumps
from carevault.rest.errors import translated
from carevault.rest.interactions import JSON, FhirResponse
from carevault.web.audit_search import page_links, read_search
from carevault.web.fhir_routes import base_url, parameters_body
from carevault.web.officers import is_officer, officer_refusal, refusal_headers
from carevault.web.responses import NO_STORE, fhir_response
from carevault.web.security import CallerDep, ServicesDep, caller

router = APIRouter()

LedgerName = Annotated[str, Query(pattern="^(audit|unwrap)$")]


def _ledger(svc: Services, name: str) -> Ledger:
    return svc.audit_ledger if name == "audit" else svc.unwrap_ledger


def _latest(ledger: Ledger) -> StoredCheckpoint:
    """The latest checkpoint, made now if the ledger has grown past it (for a signed-in
    privacy officer only: signing costs a signature and a witness round trip)."""
    latest = ledger.checkpoints.latest()
    if latest is None or latest.size < ledger.store.head()[0]:
        latest = ledger.checkpoints.make("on-request")
    return latest


def _record(svc: Services, who: Caller, outcome: Outcome, reason: str, **detail: Any) -> None:
    svc.audit.record(
        [
            # No purpose: an officer's look at the ledger is not care (it had none).
            caller_event(
                who,
                Tag.AUDIT_READ,
                outcome,
                svc.now_us(),
                purpose=None,
                reason=reason,
                detail=detail,
            )
        ]
    )


def _require_privacy_officer(svc: Services, who: Caller, what: str) -> None:
    """The shared officer check (role and token scopes); a refusal is recorded."""
    reason = officer_refusal(who, f"read {what}")
    if reason is not None:
        _record(svc, who, Outcome.DENIED, reason)
        raise FhirError(403, [Issue("forbidden", reason)], refusal_headers(who))


def _published(ledger: Ledger) -> StoredCheckpoint:
    found = ledger.checkpoints.latest()
    if found is None:
        raise FhirError(404, [Issue("not-found", "no checkpoint has been signed yet")])
    return found


@router.get("/audit/checkpoint")
async def checkpoint(
    request: Request,
    svc: ServicesDep,
    ledger: LedgerName = "audit",
    tree_size: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    """The latest signed checkpoint (C2SP signed note, with witness cosignatures).

    Anyone may fetch it, and is served the one signed last: checkpoints are signed on the
    schedule, at containment, and when a privacy officer asks with a bearer token (then
    one is signed now if the ledger has grown). A stranger cannot make the server sign.

    With ``tree_size``, the note signed at exactly that size (the one an incident's
    scope or an inclusion proof cited), as it was served then: every note stored was
    the latest once. Nothing is signed for it, whoever asks; a size no note was signed at
    is ``404`` in the same words whether or not the live tree has reached it (its size
    is not published unsigned).
    """
    chosen = _ledger(svc, ledger)
    fresh = False
    if request.headers.get("authorization"):
        who = await caller(request, svc)  # a bad token is refused (401), as anywhere
        fresh = is_officer(who)
    if tree_size is not None:
        signed = await run_in_threadpool(chosen.checkpoints.at_size, tree_size)
        if signed is None:
            raise FhirError(
                404, [Issue("not-found", f"no checkpoint was signed at size {tree_size}")]
            )
        return Response(signed.note, media_type="text/plain; charset=utf-8", headers=NO_STORE)
    found = await run_in_threadpool(_latest if fresh else _published, chosen)
    return Response(found.note, media_type="text/plain; charset=utf-8", headers=NO_STORE)


@router.get("/audit/vkey")
async def verifier_keys(svc: ServicesDep) -> JSONResponse:
    """The keys that verify checkpoints and cosignatures, for offline verification."""
    witnesses = [witness.verifier_key().render() for witness in svc.audit_ledger.witnesses]
    return JSONResponse(
        {
            "audit": svc.audit_ledger.checkpoints.signer.vkey.render(),
            "unwrap": svc.unwrap_ledger.checkpoints.signer.vkey.render(),
            "witnesses": witnesses,
        }
    )


@router.get("/audit/proof/consistency")
async def consistency(
    svc: ServicesDep,
    old: Annotated[int, Query(ge=0)],
    new: Annotated[int, Query(ge=0)],
    ledger: LedgerName = "audit",
) -> JSONResponse:
    chosen = _ledger(svc, ledger)
    try:
        proof = await run_in_threadpool(chosen.prove_consistency, old, new)
    except OutOfRange as refused:
        raise FhirError(400, [Issue("invalid", str(refused))]) from None
    return JSONResponse(
        {"old": old, "new": new, "proof": [base64.b64encode(item).decode() for item in proof]},
        headers=NO_STORE,
    )


@router.get("/audit/proof/inclusion")
async def inclusion(
    svc: ServicesDep,
    who: CallerDep,
    seq: Annotated[int, Query(ge=0)],
    ledger: LedgerName = "audit",
    tree_size: Annotated[int | None, Query(ge=1)] = None,
) -> JSONResponse:
    """An entry, its inclusion proof, and the signed checkpoint the proof leads to: the
    latest, or with ``tree_size`` one signed earlier at that size (the one an incident's
    scope cites), so a line is proven against the checkpoint kept with it."""
    _require_privacy_officer(svc, who, "ledger entries")
    chosen = _ledger(svc, ledger)

    def signed() -> StoredCheckpoint:
        if tree_size is None:
            return _latest(chosen)
        found = chosen.checkpoints.at_size(tree_size)
        if found is None:
            # Names only the size asked for: the live tree's is not published unsigned.
            raise FhirError(
                404, [Issue("not-found", f"no checkpoint was signed at size {tree_size}")]
            )
        return found

    def prove() -> dict[str, Any]:
        latest = signed()
        if seq >= latest.size:
            raise FhirError(404, [Issue("not-found", f"entry {seq} is not in the ledger")])
        data = chosen.store.entry(seq)
        if data is None:
            raise LedgerCorrupt(f"entry {seq} is missing: run `carevault audit verify`")
        proof = chosen.store.inclusion_proof(seq, latest.size)
        _record(svc, who, Outcome.SUCCESS, "inclusion proof", seq=seq, ledger=ledger)
        return {
            "seq": seq,
            "tree_size": latest.size,
            "entry": base64.b64encode(data).decode(),
            "proof": [base64.b64encode(item).decode() for item in proof],
            "checkpoint": latest.note,
        }

    return JSONResponse(await run_in_threadpool(prove), headers=NO_STORE)


@router.get("/fhir/AuditEvent")
async def audit_events(request: Request, svc: ServicesDep, who: CallerDep) -> Response:
    """AuditEvent search (``audit_search``: patient, agent, entity, type, subtype, date
    and _lastUpdated with R4's prefixes, outcome, _sort, _total, _count, _after,
    _before), for a privacy officer only, checked before any parameter is read."""
    _require_privacy_officer(svc, who, "audit events")
    params = request.query_params.multi_items()
    search = await run_in_threadpool(
        read_search,
        params,
        svc.vault,
        ZoneInfo(svc.settings.timezone),
        svc.clock(),  # once: what an ``ap`` date is measured from
    )
    query = AuditQuery(**search.query)
    found = await run_in_threadpool(matching, svc.audit_ledger, query)
    total = (
        await run_in_threadpool(count_matching, svc.audit_ledger, query) if search.total else None
    )
    detail: dict[str, Any] = {"returned": len(found)}
    if total is not None:
        detail["total"] = total
    if search.released:
        # Before anything leaves: a patient past the release budget is refused (429).
        for patient_id, pseudonym in search.released.items():
            told = _told(event for _, event, _ in found if event.patient_pseudonym == pseudonym)
            await run_in_threadpool(
                _release_report,
                svc,
                who,
                patient_id,
                pseudonym,
                "AuditEvent search",
                told,
                **detail,
            )
    else:
        await run_in_threadpool(_record, svc, who, Outcome.SUCCESS, "AuditEvent search", **detail)
    base = base_url(request)
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if total is not None:
        bundle["total"] = total
    last = found[-1][0] if len(found) == query.count else None
    bundle["link"] = page_links(base, params, search, last)
    bundle["entry"] = [
        {
            "fullUrl": f"{base}/AuditEvent/audit-{seq}",
            "resource": fhir_audit_event(seq, data),
            "search": {"mode": "match"},
        }
        for seq, _, data in found
    ]
    return fhir_response(FhirResponse(200, dumps(bundle)))


def describe_principal(svc: Services) -> Any:
    def describe(event: AuditEvent) -> dict[str, Any]:
        principal = event.principal or ""
        who: dict[str, Any] = {
            "who": principal,
            "role": event.role,
            "clinics": list(event.clinic_ids),
        }
        if principal.startswith("staff:"):
            account = svc.accounts.find(principal.removeprefix("staff:"))
            if account is not None:
                who["name"] = account.display_name
        return who

    return describe


def build_access_report(
    svc: Services, who: Caller, patient_id: str, before_seq: int | None = None
) -> dict[str, Any]:
    """A patient's access report against the latest checkpoint, recorded as a read of
    the ledger by ``who``; the API route and the console both build it here. The newest
    accesses (before ``before_seq``, to page back); ``complete`` says if any is left out."""
    pseudonyms = svc.vault.patient_pseudonyms([patient_id])
    if patient_id not in pseudonyms:
        raise FhirError(404, [Issue("not-found", f"Patient/{patient_id} is not known")])
    report = access_report(
        svc.audit_ledger,
        pseudonyms[patient_id],
        _latest(svc.audit_ledger),
        describe_principal(svc),
        limit=svc.settings.access_report_limit,
        before_seq=before_seq,
    )
    told = sorted({str(category) for line in report["accesses"] for category in line["categories"]})
    _release_report(
        svc, who, patient_id, pseudonyms[patient_id], "patient access report", tuple(told)
    )
    return {"patient": f"Patient/{patient_id}", **report}


def _told(events: Iterable[AuditEvent]) -> tuple[str, ...]:
    """The categories the entries shown of one patient say were touched: what they tell
    of the patient's records (adversary round 78)."""
    return tuple(sorted({category for event in events for category in event.categories}))


def _release_report(
    svc: Services,
    who: Caller,
    patient_id: str,
    pseudonym: str,
    reason: str,
    told: tuple[str, ...],
    **detail: Any,
) -> None:
    """Record a patient's accesses (their access report, or an AuditEvent search by
    ``patient``) as a release of the patient before they leave: they tell who opened
    their records, which ones and what they touched (``sensitive_clinical`` says there
    is a record the officer may not read), so one report after another is a bulk read
    (adversary round 51). Its entry names the patient (their own report lists it, the
    detectors judge it as a read) and rides the release budget: a patient already given
    today costs nothing more, one past the budget is refused (429, recorded, the
    ``release-budget`` alert) and nothing is returned. It names ``told``, the categories
    the entries shown say were touched (which tell that the patient has such records, as
    a count does): an incident's scope counts it as a release (adversary round 78)."""
    actor = who.actor
    event = caller_event(
        who,
        Tag.AUDIT_READ,
        Outcome.SUCCESS,
        svc.now_us(),
        resource_type="Patient",
        resource_id=patient_id,
        patient_pseudonym=pseudonym,
        categories=told,
        reason=reason,
        detail=detail,
    )
    guard = svc.gate.release
    release = (
        guard.claim(who.principal, str(actor.role), [pseudonym], event.at_us, actor.practitioner_id)
        if guard is not None and actor is not None
        else None
    )
    try:
        svc.audit.record([event], None, release)
    except ReleaseRefused as refused:
        svc.audit.record([replace(event, outcome=Outcome.DENIED, reason=str(refused))])
        raise FhirError(429, [Issue("throttled", str(refused))]) from None


@router.get("/audit/patients/{patient_id}/access-report")
async def patient_access_report(
    patient_id: str, svc: ServicesDep, who: CallerDep, before: str | None = None
) -> JSONResponse:
    """``before``: the report's ``older_before``, for the accesses an incomplete report
    left out."""
    _require_privacy_officer(svc, who, "access reports")
    if before is not None and not (before.isascii() and before.isdigit() and len(before) <= 18):
        raise FhirError(400, [Issue("invalid", "before is an entry number")])
    before_seq = int(before) if before is not None else None
    report = await run_in_threadpool(build_access_report, svc, who, patient_id, before_seq)
    return JSONResponse(report, headers=NO_STORE)


@router.post("/fhir/Patient/{patient_id}/$break-glass")
async def break_glass(
    patient_id: str, request: Request, svc: ServicesDep, who: CallerDep
) -> Response:
    """A clinician without a care relationship opens one patient's record for a while,
    stating a reason from the fixed list and in words; queued for privacy review."""
    grant = await request_grant(request, svc, who, patient_id, emergency=False)
    result = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "grant", "valueString": grant.grant_id},
            {"name": "expires", "valueInstant": _fhir_instant(grant.expires_us)},
        ],
    }
    return Response(dumps(result), media_type=JSON, headers=NO_STORE)


async def request_grant(
    request: Request, svc: Services, who: Caller, patient_id: str, *, emergency: bool
) -> Grant:
    """Read the reason and words from a Parameters body and ask the gate for a grant."""
    values = await parameters_body(request)
    with translated():
        grant: Grant = await run_in_threadpool(
            svc.gate.break_glass,
            who,
            patient_id,
            values.get("reason", ""),
            values.get("text", ""),
            emergency=emergency,
        )
    return grant


def _fhir_instant(at_us: int) -> str:
    return fhir_instant(from_micros(at_us))
