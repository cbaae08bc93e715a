"""Batch and transaction Bundles (FHIR R4 http.html#transaction).

A transaction is all or nothing: every entry is validated, ``urn:uuid:``
references are resolved to the ids the server assigns, and all writes go to the
gate in one call, which commits them in one database transaction. Entries are
processed in the order the spec sets (DELETE, POST, PUT, then GET), a write after
the Bundle's records it refers to (``write_order``), and answered in the order they
came. A batch runs each entry on its own and reports each
entry's outcome. Two entries with one ``fullUrl`` (in either), or in a transaction
with the same conditional criteria, or one whose identifier criteria find the record
the other names or writes (one HKID spelt two ways), are refused before any entry is
looked up (``bundle_identities``).

An entry answers as the same request sent on its own would: a write by ``Prefer:
return=`` (``rest/answers.py``; with no preference, its ``response`` alone), showing
only the version the gate let its writer have; a read by id ``304`` where its
``ifNoneMatch`` names the version read (or ``ifModifiedSince`` dates it after); ``ifMatch``
as the header; a ``PUT`` or ``DELETE`` on ``[type]?[criteria]`` as that conditional
update or delete (``rest/conditional.py``), its match found before anything is written.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import Connection

from carevault.clock import to_micros
from carevault.db import pinned
from carevault.fhir import jsonio
from carevault.fhir.content import InputLimits
from carevault.fhir.elements import walk_references
from carevault.fhir.identity import carried_identifiers, named_identifiers
from carevault.fhir.outcome import FhirError, Issue, bad_request, outcome
from carevault.fhir.registry import RESOURCE_TYPES, ResourceType
from carevault.fhir.validate import InvalidResource, parse_json, validate_resource
from carevault.gate import AccessDenied, Caller
from carevault.rest import bundles, conditional
from carevault.rest.answers import not_modified, prefer_return, write_answer
from carevault.rest.bundle_identities import (
    CriteriaKey,
    Identity,
    criteria_key,
    refuse_one_identity,
    refuse_repeated_criteria,
    refuse_repeated_full_urls,
)
from carevault.rest.bundle_refs import absolute
from carevault.rest.errors import to_fhir_error, translated
from carevault.rest.interactions import (
    FhirInteractions,
    FhirResponse,
    checked_id,
    deletes_nothing,
    failed_precondition,
    parse_etag,
    parse_etags,
    resource_type_named,
    version_response_entry,
    write_response_entry,
)
from carevault.rest.operations import DEFINED, unknown_operation
from carevault.rest.write_order import dependency_order
from carevault.vault.records import Head, Method, NotFound, Opened, WriteResult
from carevault.vault.writer import Delete, Operation, Put

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "GET": 3}


@dataclass
class _Entry:
    index: int
    method: str
    url: str
    full_url: str | None
    resource: dict[str, Any] | None
    if_match: str | None
    if_none_exist: str | None
    if_none_match: str | None = None
    #: ``request.ifModifiedSince``, in microseconds (a GET entry's).
    if_modified_since: int | None = None
    resource_type: ResourceType | None = None
    resource_id: str | None = None
    #: A conditional update's or delete's criteria (``PUT [type]?[criteria]``).
    criteria: str | None = None
    #: A conditional update that matched nothing: it creates under a new id.
    creates: bool = False
    #: A conditional delete that matched nothing the caller may see: it deletes nothing.
    matched_nothing: bool = False
    #: What a conditional create (ifNoneExist) found, as its caller's search showed it:
    #: nothing to write.
    existing: Opened | None = None
    #: A conditional create that found no match: the identifier's tokens a record written
    #: meanwhile would hold (``Put.unless_held``).
    unless_held: tuple[bytes, ...] = ()

    @property
    def writes(self) -> bool:
        """Whether the entry writes a record (not a GET, not a conditional create that
        found one, not a conditional delete that found none)."""
        return self.method != "GET" and self.existing is None and not self.matched_nothing

    @property
    def reference(self) -> str:
        assert self.resource_type is not None  # noqa: S101 - set by _target first
        return f"{self.resource_type.name}/{self.resource_id}"


def process(
    interactions: FhirInteractions,
    caller: Caller,
    body: bytes,
    base: str,
    *,
    prefer: str | None = None,
) -> FhirResponse:
    """``prefer``: the request's ``Prefer`` header, which its write entries answer."""
    bundle = parse_json(body)
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise bad_request("POST to the base URL takes a Bundle of type batch or transaction")
    kind = bundle.get("type")
    if kind not in ("batch", "transaction"):
        raise bad_request("the Bundle type must be batch or transaction")
    entries = _entries(bundle, interactions.limits.bundle_entries)
    # bdl-7 holds for a batch as for a transaction (only a history may repeat a fullUrl):
    # refused whole, on the Bundle's text alone, before any entry is looked up.
    refuse_repeated_full_urls((entry.index, entry.full_url) for entry in entries)
    # With no return preference an entry is its response alone, as before Prefer was read:
    # a Bundle of a thousand writes is not sent back whole unless asked for.
    returning = prefer_return(prefer) or "minimal"
    if kind == "transaction":
        return _transaction(interactions, caller, entries, base, returning)
    return _batch(interactions, caller, entries, base, returning)


def _entries(bundle: dict[str, Any], max_entries: int) -> list[_Entry]:
    raw = bundle.get("entry", [])
    if not isinstance(raw, list):
        raise bad_request("Bundle.entry must be an array")
    if len(raw) > max_entries:
        # Each entry may cost a decryption or a write: the bound is CAREVAULT_MAX_BUNDLE_ENTRIES.
        raise bad_request(f"a Bundle may hold at most {max_entries} entries", code="too-costly")
    entries: list[_Entry] = []
    for index, item in enumerate(raw):
        where = f"Bundle.entry[{index}]"
        request = item.get("request") if isinstance(item, dict) else None
        if not isinstance(request, dict):
            raise _entry_error(where, "each entry needs a request")
        method, url = request.get("method"), request.get("url")
        if method == "PATCH":
            # A patch in a Bundle is a Binary of the patch document (http.html#patch);
            # not supported: refused as a whole, never skipped.
            raise _entry_error(
                where,
                "PATCH entries are not supported in a Bundle; send PATCH [type]/[id] "
                "with application/json-patch+json",
            )
        if method not in _ORDER or not isinstance(url, str) or not url:
            raise _entry_error(where, "request.method must be GET, POST, PUT or DELETE with a url")
        resource = item.get("resource")
        if method in ("POST", "PUT") and not isinstance(resource, dict):
            raise _entry_error(where, f"a {method} entry needs a resource")
        full = item.get("fullUrl")
        entries.append(
            _Entry(
                index=index,
                method=method,
                url=url,
                full_url=full if isinstance(full, str) else None,
                resource=resource if method in ("POST", "PUT") else None,
                if_match=_text(request.get("ifMatch")),
                if_none_exist=_text(request.get("ifNoneExist")),
                if_none_match=_text(request.get("ifNoneMatch")),
                if_modified_since=_instant(where, request.get("ifModifiedSince")),
            )
        )
    return entries


def _instant(where: str, value: Any) -> int | None:
    """``request.ifModifiedSince``: a FHIR instant (a time of day and its zone), or
    absent. Anything else is refused: a Bundle that asks a condition CareVault cannot
    read is not answered as if it had asked none."""
    if value is None:
        return None
    if isinstance(value, str) and _INSTANT.fullmatch(value):
        try:
            return to_micros(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except (ValueError, OverflowError):
            pass
    raise _entry_error(
        where, "request.ifModifiedSince must be a FHIR instant, such as 2026-12-05T10:00:00Z"
    )


#: FHIR R4's instant (datatypes.html#instant): seconds, and a zone, always given.
_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _entry_error(where: str, message: str, status: int = 400, code: str = "invalid") -> FhirError:
    return FhirError(status, [Issue(code, f"{where}: {message}", expression=(where,))])


def _at_entry(where: str, error: FhirError) -> FhirError:
    """``error`` as the entry ``where`` answers it: its status and code, named by entry."""
    code = error.issues[0].code if error.issues else "invalid"
    return _entry_error(where, str(error), error.status, code)


def _target(entry: _Entry) -> None:
    """Fill in the entry's resource type and id from its method and URL."""
    where = f"Bundle.entry[{entry.index}]"
    path = entry.url.split("?", 1)[0].strip("/")
    parts = path.split("/")
    try:
        _refuse_operation(parts)
        entry.resource_type = resource_type_named(parts[0])
        if entry.method == "POST":
            if len(parts) != 1:
                raise bad_request("POST goes to a type, e.g. Patient")
            entry.resource_id = str(uuid.uuid4())
        elif entry.method in ("PUT", "DELETE"):
            if len(parts) == 1 and "?" in entry.url:
                # Conditional: the record is the criteria's match (``_resolve_conditional_write``).
                entry.criteria = entry.url.split("?", 1)[1]
            elif len(parts) != 2 or "?" in entry.url:
                raise bad_request(f"{entry.method} goes to [type]/[id] or [type]?[criteria]")
            else:
                entry.resource_id = checked_id(parts[1])
    except FhirError as error:
        raise _at_entry(where, error) from None
    if (
        entry.resource is not None
        and entry.resource.get("resourceType") != entry.resource_type.name
    ):
        raise _entry_error(where, "the resource's type does not match request.url")


def _transaction(
    interactions: FhirInteractions,
    caller: Caller,
    entries: list[_Entry],
    base: str,
    returning: str,
) -> FhirResponse:
    for entry in entries:
        _target(entry)
    refuse_repeated_criteria(_conditional_criteria(entries))
    refuse_one_identity([_identity(entry) for entry in entries])
    _resolve_conditional_creates(interactions, caller, entries)
    for entry in entries:
        _resolve_conditional_write(interactions, caller, entry)
    _refuse_overlaps(entries)
    _resolve_references(entries)
    _resolve_conditional_references(interactions, caller, entries)
    operations: list[tuple[_Entry, Operation]] = []
    issues: list[Issue] = []
    for entry in _write_order(entries):
        try:
            operations.append((entry, _operation(entry, interactions.limits)))
        except InvalidResource as error:
            issues.extend(_prefixed(error, entry.index))
    if issues:
        raise FhirError(400, issues[:50])
    gets = [entry for entry in entries if entry.method == "GET"]
    answered: dict[int, bytes] = {}

    def read_back(connection: Connection) -> None:
        # The reads run after the writes, in their transaction: they see what was just
        # written, and if one is refused or fails, nothing at all is written. While they
        # run, the transaction holds the audit ledger and the record writes, and every
        # other request waits: bounded in time (adversary round 84: 499 searches by one
        # desk held every clinician's read 12-19 s, then answered 503).
        limit = interactions.limits.transaction_read_seconds
        started = time.monotonic()
        with pinned(interactions.gate.vault.engine, connection):
            for entry in gets:
                if answered and time.monotonic() - started > limit:
                    raise _entry_error(
                        f"Bundle.entry[{entry.index}]",
                        f"a transaction's reads may run {limit:g} s, and they ran longer: "
                        "nothing was written; send the reads in a batch, or fewer",
                        code="too-costly",
                    )
                answered[entry.index] = _transaction_get(interactions, caller, entry, base)

    # DELETEs of records the caller does not know of delete nothing and succeed
    # (``deletes_nothing``): the transaction is written again without each such entry the
    # gate refused, at most once per DELETE entry, everything else as sent.
    nothing: set[int] = set()
    with translated():
        while True:
            kept = [(entry, op) for entry, op in operations if entry.index not in nothing]
            try:
                results = interactions.gate.write(
                    caller, [op for _, op in kept], within=read_back if gets else None
                )
                break
            except NotFound as unknown:
                for _, op in kept:
                    if not isinstance(op, Delete):
                        continue
                    conflict = failed_precondition(
                        unknown, op.resource_type.name, op.resource_id, op.if_match
                    )
                    if conflict is not None:
                        raise conflict from None
                unseen = [
                    entry.index
                    for entry, op in kept
                    if isinstance(op, Delete)
                    and deletes_nothing(unknown, op.resource_type.name, op.resource_id, op.if_match)
                ]
                if not unseen:
                    raise
                nothing.update(unseen)
                answered.clear()
    responses: dict[int, bytes] = {
        entry.index: _write_entry(result, base, returning)
        for (entry, _), result in zip(kept, results, strict=True)
    }
    responses.update(dict.fromkeys(nothing, _DELETED_NOTHING))
    responses.update((entry.index, _DELETED_NOTHING) for entry in entries if entry.matched_nothing)
    responses.update(answered)
    for entry in entries:
        if entry.existing is not None:
            responses[entry.index] = _matched_response(entry.existing, base, returning)
    ordered = [responses[entry.index] for entry in entries]
    return FhirResponse(200, bundles.response_bundle("transaction-response", ordered))


#: The entry of a DELETE that deleted nothing (R4 http.html#delete: 204 "if the resource
#: does not exist at all"), as the same DELETE on its own answers (no ETag: no version).
_DELETED_NOTHING = bundles.dumps({"response": {"status": "204 No Content"}})


def _refuse_overlaps(entries: list[_Entry]) -> None:
    """R4 http.html#trules: "If any resource identities ... overlap in steps 1-3 [DELETE,
    POST, PUT], then the transaction SHALL fail": which of two writes of one record
    stands would depend on the order of processing."""
    first: dict[str, int] = {}
    for entry in entries:
        if not entry.writes:
            continue
        earlier = first.setdefault(entry.reference, entry.index)
        if earlier != entry.index:
            raise _entry_error(
                f"Bundle.entry[{entry.index}]",
                f"{entry.reference} is written by Bundle.entry[{earlier}] too; "
                "a transaction writes each resource once",
            )


def _conditional_criteria(entries: list[_Entry]) -> list[tuple[int, str, CriteriaKey]]:
    """Each conditional entry's criteria (where they are, and as compared), for
    ``refuse_repeated_criteria``: two with the same criteria come to one record, found or
    created, and are refused before either is looked up, so alike whether one exists and
    whether the caller may see it. Each is searched among the records stored before the
    Bundle: where none matched, neither saw the record the other made, and two Patients
    came to hold one MRN, after which every conditional write by it answered 412."""
    found: list[tuple[int, str, CriteriaKey]] = []
    for entry in entries:
        assert entry.resource_type is not None  # noqa: S101 - set by _target
        name = entry.resource_type.name
        if entry.method == "POST" and entry.if_none_exist:
            # As ``FhirInteractions.criteria_of`` reads it: ``[type]?`` before it is allowed.
            criteria = entry.if_none_exist.split("?", 1)[-1]
            found.append((entry.index, "request.ifNoneExist", criteria_key(name, criteria)))
        elif entry.criteria is not None:
            found.append((entry.index, "request.url", criteria_key(name, entry.criteria)))
    return found


def _identity(entry: _Entry) -> Identity:
    """What the entry comes to by identifier, for ``refuse_one_identity``: the
    identifiers its criteria name (read as its lookup reads them), those its resource
    carries."""
    rt = entry.resource_type
    assert rt is not None  # noqa: S101 - set by _target
    element, params = None, None
    if entry.method == "POST" and entry.if_none_exist:
        element = "request.ifNoneExist"
        params = parse_qsl(entry.if_none_exist.split("?", 1)[-1])
    elif entry.criteria is not None:
        element = "request.url"
        params = parse_qsl(entry.criteria, keep_blank_values=True)
    named = None if params is None else named_identifiers(rt, params)
    carried = frozenset() if entry.resource is None else carried_identifiers(rt, entry.resource)
    return Identity(
        entry.index,
        rt.name,
        element,
        deletes=entry.method == "DELETE",
        needs=frozenset() if named is None else named.needs,
        named=frozenset() if named is None else named.holds,
        carried=carried,
    )


def _write_order(entries: list[_Entry]) -> list[_Entry]:
    """The entries to write, in the order to write them: by method as R4 orders them,
    each after the entries of the Bundle it refers to (``write_order``), so that the
    outcome does not depend on the order the client listed them in."""
    writes = [entry for entry in entries if entry.writes]
    position = {entry.reference: place for place, entry in enumerate(writes)}
    needs = [
        {
            position[node["reference"]]
            for node in walk_references(entry.resource or {})
            if node["reference"] in position
        }
        for entry in writes
    ]
    # A Patient is deleted after the Bundle's other deletions: the records of its
    # compartment that the same Bundle deletes are gone by then (a Patient that still has
    # records is not deleted), however the client listed them.
    ranks = [
        (
            _ORDER[entry.method],
            entry.method == "DELETE" and entry.reference.startswith("Patient/"),
            entry.index,
        )
        for entry in writes
    ]
    return [writes[place] for place in dependency_order(ranks, needs)]


def _transaction_get(
    interactions: FhirInteractions, caller: Caller, entry: _Entry, base: str
) -> bytes:
    """A GET entry of a transaction; a refusal refuses the whole transaction."""
    try:
        return _get_entry(interactions, caller, entry, base)
    except FhirError as error:
        where = f"Bundle.entry[{entry.index}]"
        if error.status == 403:
            raise AccessDenied(f"{where}: {error}") from None
        raise _entry_error(where, str(error), error.status) from None


def _operation(entry: _Entry, limits: InputLimits) -> Operation:
    """The write an entry asks, with its preconditions as the same request alone has
    them: ``ifMatch``, and ``ifNoneMatch`` (``*``: create, never replace), which a write
    entry had ignored, replacing what the request alone answers ``412`` for."""
    assert entry.resource_type is not None and entry.resource_id is not None  # noqa: S101
    try:
        expected = parse_etag(entry.if_match)
        unwanted = parse_etags(entry.if_none_match) if entry.method != "POST" else None
    except FhirError as error:
        raise _at_entry(f"Bundle.entry[{entry.index}]", error) from None
    if entry.method == "DELETE":
        return Delete(entry.resource_type, entry.resource_id, expected, unwanted)
    resource = validate_resource(entry.resource, entry.resource_type.name, limits)
    if entry.criteria is not None:
        # The match's id, or the one a conditional update creates under
        # (``_resolve_conditional_write`` checked any id the resource carries).
        resource = {**resource, "id": entry.resource_id}
    elif entry.method == "PUT" and resource.get("id") != entry.resource_id:
        raise InvalidResource(400, [Issue("invariant", "the resource's id must match request.url")])
    return Put(
        entry.resource_type,
        entry.resource_id,
        resource,
        if_match=None if entry.creates else expected,
        # A conditional update that creates replaces nothing (as alone).
        if_none_match=None if entry.creates else unwanted,
        fresh=entry.method == "POST" or entry.creates,
        method=Method(entry.method),
        unless_held=entry.unless_held,
    )


def _prefixed(error: FhirError, index: int) -> list[Issue]:
    where = f"Bundle.entry[{index}].resource"
    return [
        Issue(issue.code, f"{where}: {issue.diagnostics}", issue.severity, (where,))
        for issue in error.issues
    ]


def _resolve_conditional_creates(
    interactions: FhirInteractions, caller: Caller, entries: list[_Entry]
) -> None:
    for entry in entries:
        _resolve_conditional_create(interactions, caller, entry)


def _resolve_conditional_create(
    interactions: FhirInteractions, caller: Caller, entry: _Entry
) -> None:
    """A POST entry with ``ifNoneExist``: the record it finds, as ``POST`` with
    If-None-Exist finds it (and refuses it where only hidden records match)."""
    if entry.method != "POST" or not entry.if_none_exist or entry.resource_type is None:
        return
    query = interactions.criteria_of(entry.resource_type, entry.if_none_exist)
    existing = interactions.matching(caller, query)
    if existing is not None:
        entry.existing = existing
        entry.resource_id = existing.head.resource_id
    else:
        # Written meanwhile by another request, the match fails the transaction (409:
        # sent again, the Bundle finds it) rather than make a second record.
        entry.unless_held = interactions.identifier_tokens(query)


def _resolve_conditional_write(
    interactions: FhirInteractions, caller: Caller, entry: _Entry
) -> None:
    """A PUT or DELETE entry on ``[type]?[criteria]``: the record it writes, as the same
    request on its own finds it (``conditional.update_target``, ``delete_target``),
    through the gate and in the ledger, before anything is written (R4 http.html#trules:
    the matches are those of the server's state as the Bundle found it)."""
    if entry.criteria is None or entry.resource_type is None:
        return
    params = parse_qsl(entry.criteria, keep_blank_values=True)
    try:
        if entry.method == "DELETE":
            found = conditional.delete_target(interactions, caller, entry.resource_type, params)
            entry.matched_nothing = found is None
            entry.resource_id = found
            return
        given = (entry.resource or {}).get("id")
        expected = parse_etag(entry.if_match)
        entry.resource_id, entry.creates = conditional.update_target(
            interactions, caller, entry.resource_type, params, given=given, expected=expected
        )
        if entry.creates:
            # Written meanwhile by another request, the match fails the transaction (409:
            # sent again, the Bundle updates it) rather than make a second record.
            entry.unless_held = interactions.identifier_tokens(
                interactions.parse_criteria(entry.resource_type, params)
            )
    except FhirError as error:
        raise _at_entry(f"Bundle.entry[{entry.index}]", error) from None


def _matched_response(existing: Opened, base: str, returning: str) -> bytes:
    """The record a conditional create found, answered as ``POST`` with If-None-Exist
    answers it: as the caller's search showed it (and recorded it in the ledger), its
    version, ETag and Last-Modified as that request's headers give them."""
    response = version_response_entry(existing.head, "200 OK")
    return _shown_entry(existing.head, existing.body, response, base, returning, found=True)


def _write_entry(result: WriteResult, base: str, returning: str) -> bytes:
    response = write_response_entry(result, base)
    if result.head.deleted:
        return bundles.dumps({"response": response})  # 204, no body, whatever is preferred
    return _shown_entry(result.head, result.body, response, base, returning)


def _shown_entry(
    head: Head,
    body: bytes | None,
    response: dict[str, Any],
    base: str,
    returning: str,
    *,
    found: bool = False,
) -> bytes:
    """An entry naming ``head`` by ``fullUrl``, answered as the same write on its own
    would be (``answers.write_answer``). ``body``: what the gate let the writer have, so
    an element withheld from them cannot leave through an entry either."""
    answer = write_answer(head, body, returning, found=found)
    if answer.outcome is not None:
        response = {**response, "outcome": answer.outcome}
    shown = b"" if answer.resource is None else b',"resource":' + answer.resource
    return (
        b'{"fullUrl":'
        + bundles.dumps(bundles.full_url(base, head))
        + shown
        + b',"response":'
        + bundles.dumps(response)
        + b"}"
    )


def _resolve_references(entries: list[_Entry]) -> None:
    """Point references at the ids the server assigned, or fail on unresolvable urn: ones.
    A reference names an entry by its ``fullUrl``, as it is or, relative, read against
    the base of its own entry's ``fullUrl`` (``bundle_refs``)."""
    assigned: dict[str, str] = {}
    for entry in entries:
        if entry.full_url and entry.resource_id:
            assigned[entry.full_url] = entry.reference
    for entry in entries:
        if entry.resource is None:
            continue
        for node in walk_references(entry.resource):
            reference = node["reference"]
            # A relative reference names the entry of the fullUrl it reads as, if any.
            named = absolute(reference, entry.full_url)
            if reference in assigned:
                node["reference"] = assigned[reference]
            elif named in assigned:
                node["reference"] = assigned[named]
            elif reference.startswith(("urn:uuid:", "urn:oid:")):
                raise _entry_error(
                    f"Bundle.entry[{entry.index}]",
                    "a urn: reference does not match the fullUrl of any entry",
                )


#: A conditional reference: a search URI relative to the base, ``[type]?query``.
_CONDITIONAL_REFERENCE = re.compile(r"(?P<type>[A-Z][A-Za-z]{1,63})\?(?P<criteria>.+)", re.DOTALL)


def _resolve_conditional_references(
    interactions: FhirInteractions, caller: Caller, entries: list[_Entry]
) -> None:
    """R4 http.html#trules, "Conditional References": "When processing transactions,
    servers SHALL: check all references for search URIs; For search URIs, use the search
    to locate matching resources; if there are no matches, or multiple matches, the
    transaction fails, and an error is returned to the user; if there is a single match,
    the server replaces the search URI with a reference to the matching resource".

    Each search URI is the caller's own search, through the gate (criteria as a
    conditional interaction takes them, its reach and policy, in the ledger): it names
    only a record the caller could have found and then named as ``[type]/[id]``, which
    the write then judges as it would that. A record the caller may not see is no match
    (404, whatever is hidden: not the 409 a conditional create gives, since this tells
    nothing a search would not). One search per distinct URI. In a transaction only, as
    R4 says; a batch's entries and single writes keep the reference as sent."""
    resolved: dict[str, str] = {}
    for entry in entries:
        if entry.resource is None:
            continue
        for node in walk_references(entry.resource):
            reference = node["reference"]
            found = _CONDITIONAL_REFERENCE.fullmatch(reference)
            if found is None:
                continue
            if reference not in resolved:
                resolved[reference] = _conditional_target(
                    interactions, caller, entry.index, found["type"], found["criteria"]
                )
            node["reference"] = resolved[reference]


def _conditional_target(
    interactions: FhirInteractions, caller: Caller, index: int, type_name: str, criteria: str
) -> str:
    where = f"Bundle.entry[{index}].resource"
    rt = RESOURCE_TYPES.get(type_name)
    if rt is None:
        raise _entry_error(where, f"a conditional reference names an unsupported type {type_name}")
    query = interactions.parse_criteria(rt, parse_qsl(criteria, keep_blank_values=True))
    query.count = 2
    with translated():
        items, total = interactions.gate.search(caller, query)
    if total > 1 or len(items) > 1:
        raise FhirError.of(
            412,
            "multiple-matches",
            f"{where}: a conditional reference matches more than one {rt.name}",
        )
    if not items:
        raise FhirError.of(
            404, "not-found", f"{where}: a conditional reference matches no {rt.name}"
        )
    return items[0].head.reference


def _get_entry(interactions: FhirInteractions, caller: Caller, entry: _Entry, base: str) -> bytes:
    response = _run_get(interactions, caller, entry, base)
    if response.status == 304:
        # The caller holds the version read (and the read is in the ledger): no body.
        etag = response.headers["ETag"]
        return bundles.dumps({"response": {"status": "304 Not Modified", "etag": etag}})
    body = response.body or b"{}"
    answer: dict[str, str] = {"status": f"{response.status} OK"}
    located = response.headers.get("Content-Location")
    if located is None:
        # A search: its Bundle is the resource, and no one record is named.
        return b'{"resource":' + body + b',"response":' + bundles.dumps(answer) + b"}"
    # A read or vread answers in the entry what it answers on its own in its headers
    # (R4 http.html#transaction-response): the record's URL, its ETag and when it changed.
    answer["etag"] = response.headers["ETag"]
    updated = jsonio.load(body).get("meta", {}).get("lastUpdated")
    if isinstance(updated, str):
        answer["lastModified"] = updated
    return (
        b'{"fullUrl":'
        + bundles.dumps(located.rsplit("/_history/", 1)[0])
        + b',"resource":'
        + body
        + b',"response":'
        + bundles.dumps(answer)
        + b"}"
    )


def _refuse_operation(parts: list[str]) -> None:
    """A Bundle entry naming an operation is refused: 404 for one this server does not
    define, as the same request alone is answered (docs/rest.md), 400 for one it does
    (operations are sent alone)."""
    named = [part for part in parts if part.startswith("$")]
    if not named:
        return
    if named[-1].removeprefix("$") not in DEFINED:
        raise unknown_operation(named[-1])
    raise bad_request("operations are not taken in a Bundle entry: send them alone")


def _run_get(
    interactions: FhirInteractions, caller: Caller, entry: _Entry, base: str
) -> FhirResponse:
    """The entry's GET as the route of the same request answers it. A read by id and a
    vread weigh ``ifNoneMatch`` and ``ifModifiedSince``, as their routes weigh
    ``If-None-Match`` and ``If-Modified-Since`` (a search has neither to match)."""
    path, _, query = entry.url.partition("?")
    parts = path.strip("/").split("/")
    # Blank values kept, as the REST routes keep them: ``_elements=`` is refused here too,
    # not taken for no view at all.
    params = parse_qsl(query, keep_blank_values=True)
    _refuse_operation(parts)
    now_us = to_micros(interactions.gate.vault.clock())
    # History at every level, as R4 lets a batch carry any read interaction (its routes'
    # answers: a Bundle, named by no one record's location).
    if parts == ["_history"]:
        return interactions.history_of_many(caller, None, params, base)
    if len(parts) == 1:
        return interactions.search(caller, parts[0], params, base, strict=False)
    if len(parts) == 2 and parts[1] == "_history":
        return interactions.history_of_many(caller, parts[0], params, base)
    if len(parts) == 2:
        read = interactions.read(caller, parts[0], parts[1], base, params)
        return not_modified(entry.if_none_match, read, entry.if_modified_since, now_us)
    if len(parts) == 3 and parts[2] == "_history":
        return interactions.history(caller, parts[0], parts[1], base, params)
    if len(parts) == 4 and parts[2] == "_history":
        version = interactions.vread(caller, parts[0], parts[1], parts[3], base, params)
        return not_modified(entry.if_none_match, version, entry.if_modified_since, now_us)
    raise bad_request("GET entries support read, vread, history and search")


def _batch(
    interactions: FhirInteractions,
    caller: Caller,
    entries: list[_Entry],
    base: str,
    returning: str,
) -> FhirResponse:
    responses: list[bytes] = []
    for entry in entries:
        try:
            responses.append(_batch_entry(interactions, caller, entry, base, returning))
        except Exception as error:
            mapped = error if isinstance(error, FhirError) else to_fhir_error(error)
            if mapped is None:
                raise
            responses.append(
                bundles.dumps(
                    {
                        "response": {
                            "status": str(mapped.status),
                            "outcome": outcome(mapped.issues),
                        }
                    }
                )
            )
    return FhirResponse(200, bundles.response_bundle("batch-response", responses))


def _batch_entry(
    interactions: FhirInteractions, caller: Caller, entry: _Entry, base: str, returning: str
) -> bytes:
    if entry.method == "GET":
        return _get_entry(interactions, caller, entry, base)
    _target(entry)
    if entry.resource is not None:
        for node in walk_references(entry.resource):
            if node["reference"].startswith(("urn:uuid:", "urn:oid:")):
                raise bad_request("a batch cannot resolve urn: references; use a transaction")
    _resolve_conditional_create(interactions, caller, entry)
    if entry.existing is not None:
        return _matched_response(entry.existing, base, returning)
    _resolve_conditional_write(interactions, caller, entry)
    if entry.matched_nothing:
        return _DELETED_NOTHING
    operation = _operation(entry, interactions.limits)
    with translated():
        try:
            [result] = interactions.gate.write(caller, [operation])
        except NotFound as unknown:
            # As the DELETE alone answers (``FhirInteractions.delete``): a record not
            # known deletes nothing (204), or with ``If-Match`` fails (412).
            if not isinstance(operation, Delete):
                raise
            name, rid = operation.resource_type.name, operation.resource_id
            conflict = failed_precondition(unknown, name, rid, operation.if_match)
            if conflict is not None:
                raise conflict from None
            if not deletes_nothing(unknown, name, rid, operation.if_match):
                raise
            return _DELETED_NOTHING
    return _write_entry(result, base, returning)
