"""Conditional update, patch and delete (FHIR R4 http.html#cond-update, #cond-delete):
``PUT``, ``PATCH`` and ``DELETE`` on ``[type]?[criteria]``, and a Bundle's ``PUT`` and
``DELETE`` entries on such a URL (``rest/transaction.py``: the same rules, one code).

The criteria are a search through the gate, like any other: the caller's reach
restricts it in SQL, it is in the ledger, and it sees only what the caller may read.
What it decides is therefore decided over what the caller may see, and a record the
caller may not see never changes the answer in a way that reveals it:

- two or more matches the caller may see: 412; a hidden match never makes a 412;
- one match the caller may see: that record is updated, patched or deleted (through the
  gate, judged against the stored and the new version as for ``PUT [type]/[id]``),
  whatever the caller may not see matches too;
- no match the caller may see: a delete does nothing (204, as for no match at all); a
  patch is 404 (as for no match at all); an update would create a record, and there the
  rule of conditional create holds (``Gate.refuse_unseen_matches``): if records the
  caller may not see match, the create is refused with 409 rather than splitting a
  patient's history across two records. That 409 tells that a match exists (nothing
  more), is a refused create in the ledger and counts as a failed registration of the
  account, throttled with If-None-Exist and ``$register``: the same oracle, behind the
  same throttle, as ``POST`` with ``If-None-Exist``, not a new one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from carevault.fhir.outcome import FhirError, bad_request
from carevault.fhir.query import SearchQuery
from carevault.fhir.registry import ResourceType
from carevault.fhir.validate import parse_json, validate_resource
from carevault.gate import Caller, MatchedMeanwhile
from carevault.rest import bundles, patching
from carevault.rest.errors import translated
from carevault.rest.interactions import (
    FhirInteractions,
    FhirResponse,
    parse_etag,
    parse_etags,
    resource_type_named,
    written,
)
from carevault.vault.records import Method, Opened
from carevault.vault.writer import Delete, IfMatch, Put


def match(interactions: FhirInteractions, caller: Caller, query: SearchQuery) -> Opened | None:
    """The one record the caller may see that matches, None if none does, 412 if more do."""
    query.count = 2
    query.offset = 0
    with translated():
        shown, total = interactions.gate.search(caller, query)
    if len(shown) < 2 <= total:
        # The page held records withheld from the caller as a whole: look at all of them
        # (bounded by the search's own limits) before telling one match from several.
        query.count = min(total, interactions.search_settings.max_count)
        with translated():
            shown, _ = interactions.gate.search(caller, query)
    if len(shown) > 1:
        raise FhirError.of(
            412, "multiple-matches", "the criteria match more than one resource; narrow them"
        )
    return shown[0] if shown else None


def update(
    interactions: FhirInteractions,
    caller: Caller,
    type_name: str,
    params: Sequence[tuple[str, str]],
    body: bytes,
    base: str,
    *,
    if_match: str | None,
    prefer: str | None,
    if_none_match: str | None = None,
) -> FhirResponse:
    rt = resource_type_named(type_name)
    expected = parse_etag(if_match)
    unwanted = parse_etags(if_none_match)
    resource = validate_resource(parse_json(body), rt.name, interactions.limits)
    target, creates = update_target(
        interactions, caller, rt, params, given=resource.get("id"), expected=expected
    )
    if creates:
        # Created by the PUT it was: its history says so. Refused if a record its
        # identifiers match was written since its search (the same upsert sent again
        # through another worker): it updates that record instead, as it would have had
        # it come a moment later (integrator round, stop 64: each made a patient).
        held = interactions.identifier_tokens(interactions.parse_criteria(rt, params))
        operation = Put(rt, target, resource, fresh=True, method=Method.PUT, unless_held=held)
        with translated():
            try:
                [result] = interactions.gate.write(caller, [operation])
            except MatchedMeanwhile:
                target, creates = update_target(
                    interactions, caller, rt, params, given=None, expected=None
                )
                if creates:
                    raise
            else:
                return written(201, result.head, result.body, base, prefer)
    operation = Put(
        rt,
        target,
        {**resource, "id": target},
        if_match=expected,
        if_none_match=unwanted,
        method=Method.PUT,
    )
    with translated():
        [result] = interactions.gate.write(caller, [operation])
    return written(201 if result.created else 200, result.head, result.body, base, prefer)


def update_target(
    interactions: FhirInteractions,
    caller: Caller,
    rt: ResourceType,
    params: Sequence[tuple[str, str]],
    *,
    given: Any,
    expected: IfMatch | None,
) -> tuple[str, bool]:
    """The record a conditional update writes (``PUT [type]?[criteria]``, alone or as a
    Bundle's entry): the id of the one match the caller may see, or a new id to create
    under, and whether it is created. ``given``: the id the resource carries, if any."""
    query = interactions.parse_criteria(rt, params)
    found = match(interactions, caller, query)
    if found is not None:
        target = found.head.resource_id
        if given is not None and given != target:
            raise bad_request(
                "the resource's id is not the id of the resource the criteria match",
                code="invariant",
            )
        return target, False
    if expected is not None:
        raise FhirError.of(412, "conflict", "If-Match names a version, but nothing matches")
    if given is not None:
        raise bad_request(
            "nothing matches, and a conditional update creates with a server-assigned "
            "id: leave id out, or PUT [type]/[id] to choose it",
            code="invariant",
        )
    with translated():
        interactions.gate.refuse_unseen_matches(caller, query, 0)
    return str(uuid.uuid4()), True


def delete_target(
    interactions: FhirInteractions,
    caller: Caller,
    rt: ResourceType,
    params: Sequence[tuple[str, str]],
) -> str | None:
    """The record a conditional delete removes (``DELETE [type]?[criteria]``, alone or
    as a Bundle's entry): the one match the caller may see; None for none, whatever the
    caller may not see matches (nothing is deleted, as for no match at all)."""
    found = match(interactions, caller, interactions.parse_criteria(rt, params))
    return None if found is None else found.head.resource_id


def patch(
    interactions: FhirInteractions,
    caller: Caller,
    type_name: str,
    params: Sequence[tuple[str, str]],
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
    expected = parse_etag(if_match)
    unwanted = parse_etags(if_none_match)
    kind, document = patching.parse_patch(body, media)
    found = match(interactions, caller, interactions.parse_criteria(rt, params))
    if found is None:
        raise FhirError.of(404, "not-found", "no resource you may see matches the criteria")
    # The match is the caller's view of the record, as a read would give it.
    return patching.apply_to(
        interactions,
        caller,
        found,
        kind,
        document,
        base,
        expected=expected,
        prefer=prefer,
        max_bytes=max_bytes,
        unwanted=unwanted,
    )


def delete(
    interactions: FhirInteractions,
    caller: Caller,
    type_name: str,
    params: Sequence[tuple[str, str]],
    *,
    if_match: str | None,
    if_none_match: str | None = None,
) -> FhirResponse:
    rt = resource_type_named(type_name)
    expected = parse_etag(if_match)
    unwanted = parse_etags(if_none_match)
    target = delete_target(interactions, caller, rt, params)
    if target is None:
        return FhirResponse(204, None, {})
    operation = Delete(rt, target, expected, unwanted)
    with translated():
        [result] = interactions.gate.write(caller, [operation])
    return FhirResponse(204, None, {"ETag": bundles.etag(result.head.version_id)})
