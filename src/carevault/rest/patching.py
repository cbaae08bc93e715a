"""The patch interaction (FHIR R4 http.html#patch): ``PATCH [type]/[id]``.

A patch is a read and an update through the gate, nothing more: the record is read as
the caller may see it (a gated read, in the ledger), the patch is applied to that view,
and the result is written as a PUT of the same version would be (``If-Match`` on the
version read, so a write that came between is never lost: 412 where the client sent
If-Match, 409 where it did not, ``overtaken``). The gate therefore
judges a patch exactly as it judges a PUT: against the stored and the new version,
with the rules that keep a record on its patient and a patient at their clinic, and
the care a written record opens. Elements the caller may not see are not in the view
and are kept by the update as for a PUT.

Media types: ``application/json-patch+json`` is JSON Patch (RFC 6902);
``application/merge-patch+json`` is JSON Merge Patch (RFC 7386); plain
``application/json`` is JSON Patch when the body is an array and Merge Patch when it is
an object (what fhirpy sends). FHIRPath Patch (a Parameters body) is not supported (415).
"""

from __future__ import annotations

from typing import Any

from carevault.fhir import jsonio
from carevault.fhir.mediatype import JSON_PATCH, MERGE_PATCH
from carevault.fhir.outcome import FhirError, Issue, precondition_failed
from carevault.fhir.patch import apply_json_patch, apply_merge_patch, keep_protected
from carevault.fhir.registry import ResourceType
from carevault.fhir.subsetting import without_subsetted
from carevault.fhir.validate import InvalidResource, parse_json, validate_resource
from carevault.gate import Caller
from carevault.rest.errors import translated
from carevault.rest.interactions import (
    FhirInteractions,
    FhirResponse,
    checked_id,
    parse_etag,
    parse_etags,
    resource_type_named,
    written,
)
from carevault.vault.records import Gone, Head, Method, NotFound, Opened, VersionConflict
from carevault.vault.writer import ANY_VERSION, IfMatch, Put, names_current, version_conflict

PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, "application/json")


def parse_patch(body: bytes, media: str) -> tuple[str, Any]:
    """The kind of patch (JSON_PATCH or MERGE_PATCH) and its parsed document."""
    if media not in PATCH_TYPES:
        raise FhirError(
            415,
            [Issue("not-supported", f"PATCH takes {JSON_PATCH} (RFC 6902) or {MERGE_PATCH}")],
        )
    document = parse_json(body)
    if media == JSON_PATCH or (media == "application/json" and isinstance(document, list)):
        if not isinstance(document, list):
            raise FhirError.of(400, "structure", "a JSON Patch is a JSON array of operations")
        return JSON_PATCH, document
    if not isinstance(document, dict):
        raise FhirError.of(400, "structure", "a JSON Merge Patch of a resource is a JSON object")
    return MERGE_PATCH, document


def patched(
    rt: ResourceType,
    current: Opened,
    kind: str,
    patch: Any,
    interactions: FhirInteractions,
    max_bytes: int,
) -> dict[str, Any]:
    """The new version: ``patch`` applied to the caller's view of ``current``, checked as
    a resource of ``rt`` no larger than ``max_bytes``. Raises (and changes nothing) if
    the patch cannot be applied."""
    view: dict[str, Any] = jsonio.parse(current.body or b"{}")
    if kind == JSON_PATCH:
        result = apply_json_patch(view, patch, max_bytes)
    else:
        result = apply_merge_patch(view, patch)
    keep_protected(view, result)
    result = without_subsetted(result)
    check_size(result, max_bytes)
    try:
        return validate_resource(result, rt.name, interactions.limits)
    except InvalidResource as error:
        # The request was well formed; what it would make of the record is not valid.
        raise FhirError(422, error.issues) from None


def check_size(resource: dict[str, Any], max_bytes: int) -> None:
    if len(jsonio.dumps(resource)) > max_bytes:
        raise FhirError(
            413, [Issue("too-long", f"the patched resource is over the limit of {max_bytes} bytes")]
        )


def apply_to(
    interactions: FhirInteractions,
    caller: Caller,
    current: Opened,
    kind: str,
    patch: Any,
    base: str,
    *,
    expected: IfMatch | None,
    prefer: str | None,
    max_bytes: int,
    unwanted: frozenset[int] | None = None,
) -> FhirResponse:
    """Patch ``current`` (already read through the gate) and write the result;
    ``unwanted``: the versions ``If-None-Match`` names (412 if it names this one)."""
    rt = resource_type_named(current.head.resource_type)
    if expected is not None and not names_current(expected, current.head.version_id):
        refused = version_conflict(rt.name, current.head.resource_id, expected)
        raise precondition_failed(str(refused))
    if unwanted and (ANY_VERSION in unwanted or current.head.version_id in unwanted):
        raise FhirError.of(412, "conflict", "If-None-Match names the current version")
    resource = patched(rt, current, kind, patch, interactions, max_bytes)
    operation = Put(
        rt,
        current.head.resource_id,
        resource,
        if_match=current.head.version_id,
        method=Method.PATCH,
    )
    with translated():
        try:
            [result] = interactions.gate.write(caller, [operation])
        except VersionConflict:
            if expected is not None:
                raise
            raise overtaken(rt.name, current.head) from None
    return written(200, result.head, result.body, base, prefer)


def overtaken(type_name: str, read: Head) -> FhirError:
    """The refusal of a PATCH sent without If-Match whose record another write changed
    between the patch's read of it and its write (409): the patch was made to the
    version read, and writing it over a later one would lose that write. RFC 9110
    15.5.13 keeps 412 for a condition the request's own headers set, so 412 "If-Match
    names version n" would name a header the client never sent (integrator round 65:
    fhir-kit-client's PATCHes at once). Sent again, the patch applies to what is now
    current."""
    return FhirError.of(
        409,
        "conflict",
        f"{type_name}/{read.resource_id}: another write came first, after this patch read "
        f"version {read.version_id}; nothing was written: send it again",
    )


def patch(
    interactions: FhirInteractions,
    caller: Caller,
    type_name: str,
    resource_id: str,
    body: bytes,
    media: str,
    base: str,
    *,
    if_match: str | None,
    prefer: str | None,
    max_bytes: int,
    if_none_match: str | None = None,
) -> FhirResponse:
    rt = resource_type_named(type_name)
    checked_id(resource_id)
    expected = parse_etag(if_match)
    unwanted = parse_etags(if_none_match)
    kind, document = parse_patch(body, media)
    with translated():
        try:
            current = interactions.gate.read(caller, rt, resource_id)
        except (NotFound, Gone) as unknown:
            # ``If-Match: *`` of a record with no current version (RFC 9110 13.1.1):
            # 412, alike for an id never used, a deleted record and a record the caller
            # may not know of (read as not known, in the same words).
            if expected != ANY_VERSION:
                raise
            raise version_conflict(rt.name, resource_id, ANY_VERSION) from unknown
    return apply_to(
        interactions,
        caller,
        current,
        kind,
        document,
        base,
        expected=expected,
        prefer=prefer,
        max_bytes=max_bytes,
        unwanted=unwanted,
    )
