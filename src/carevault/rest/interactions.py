"""FHIR RESTful interactions on one resource type: read, vread, create, update,
delete, history, search and Patient/$everything."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from carevault.clock import fhir_instant, from_micros, to_micros
from carevault.fhir import jsonio
from carevault.fhir.care_dates import CarePeriod
from carevault.fhir.content import DEFAULT_LIMITS, InputLimits
from carevault.fhir.dates import DateFormatError, DateRange, from_query
from carevault.fhir.dates import parse as parse_date
from carevault.fhir.elements import FHIR_ID, parse_reference, walk_references
from carevault.fhir.outcome import FhirError, Issue, bad_request, outcome
from carevault.fhir.query import SearchQuery, parse_query, safe_name
from carevault.fhir.registry import RESOURCE_TYPES, ResourceType
from carevault.fhir.validate import parse_json, validate_resource
from carevault.fhir.views import FULL, View, ViewError, asked_view, shown_body
from carevault.gate import Caller, Gate, MatchedMeanwhile, withholds_counts
from carevault.gate.history import versions as history_versions
from carevault.gate.prefetch import Prefetched
from carevault.rest import bundles, cursor, offsets
from carevault.rest.answers import prefer_return, write_answer
from carevault.rest.errors import translated
from carevault.rest.includes import included
from carevault.vault.records import Head, Method, NotFound, Opened, VersionConflict, WriteResult
from carevault.vault.writer import (
    ANY_VERSION,
    Delete,
    IfMatch,
    Put,
    version_conflict,
)

ID_PATTERN = FHIR_ID
_ETAG = re.compile(r'^(?:W/)?"(\d{1,9})"$')

#: Parameters every interaction takes (R4 http.html, "General parameters"): they lay an
#: answer out (``_pretty``: indented; ``_format``: weighed with Accept before the route),
#: never choose what it holds, so they are taken and not refused where a filter would be.
LAYOUT_PARAMS = frozenset({"_format", "_pretty"})

#: Criteria select records; these would only shape a result, so they have no place in a
#: conditional interaction's criteria.
_NOT_CRITERIA = frozenset(
    {"_count", "_offset", "_sort", "_include", "_revinclude", "_elements", "_summary"}
    | {"_total", "_format", "_pretty", "_contained", "_containedType"}
)
JSON = "application/fhir+json; charset=utf-8"


@dataclass
class FhirResponse:
    status: int
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchSettings:
    zone: tzinfo
    default_count: int
    max_count: int


def resource_type_named(name: str) -> ResourceType:
    found = RESOURCE_TYPES.get(name)
    if found is None:
        raise FhirError.of(
            404, "not-supported", f"resource type '{safe_name(name)}' is not supported"
        )
    return found


def checked_id(resource_id: str) -> str:
    if not ID_PATTERN.fullmatch(resource_id):
        raise bad_request("not a valid resource id (1-64 of A-Z a-z 0-9 - .)")
    return resource_id


def parse_etag(value: str | None) -> IfMatch | None:
    """The version an If-Match names; ``*`` is ``ANY_VERSION`` (RFC 9110 13.1.1: it
    matches whatever version is current, and fails where there is none); a list of
    ETags (``W/"2", W/"3"``), the versions it names, any of which may be current."""
    if value is None:
        return None
    if value.strip() == "*":
        return ANY_VERSION
    versions: set[int] = set()
    for tag in value.split(","):
        match = _ETAG.match(tag.strip())
        if not match:
            raise bad_request('If-Match must be * or version ETags such as W/"3"')
        versions.add(int(match.group(1)))
    return versions.pop() if len(versions) == 1 else frozenset(versions)


def parse_etags(value: str | None) -> frozenset[int] | None:
    """The versions an ``If-None-Match`` of a write names; ``*`` is ``ANY_VERSION``."""
    if value is None:
        return None
    named = set()
    for tag in value.split(","):
        if tag.strip() == "*":
            named.add(ANY_VERSION)
            continue
        match = _ETAG.match(tag.strip())
        if not match:
            raise bad_request('If-None-Match must be * or version ETags such as W/"3"')
        named.add(int(match.group(1)))
    return frozenset(named)


def version_headers(head: Head, base: str) -> dict[str, str]:
    return {
        "ETag": bundles.etag(head.version_id),
        "Last-Modified": bundles.last_modified(head),
        "Content-Location": f"{bundles.full_url(base, head)}/_history/{head.version_id}",
    }


class FhirInteractions:
    def __init__(
        self, gate: Gate, search: SearchSettings, limits: InputLimits = DEFAULT_LIMITS
    ) -> None:
        self.gate = gate
        self.search_settings = search
        self.limits = limits

    # --- reads -----------------------------------------------------------------------------

    def read(
        self,
        caller: Caller,
        type_name: str,
        resource_id: str,
        base: str,
        params: Sequence[tuple[str, str]] = (),
        *,
        strict: bool = False,
    ) -> FhirResponse:
        """``params``: the read's query (``_summary``, ``_elements``); checked before the
        record is read, so that a bad value reads, records and spends nothing."""
        view = self.read_view(type_name, params, strict=strict)
        rt = resource_type_named(type_name)
        with translated():
            opened = self.gate.read(caller, rt, checked_id(resource_id))
        return self.read_answer(opened, base, view)

    @staticmethod
    def read_view(
        type_name: str, params: Sequence[tuple[str, str]], *, strict: bool = False
    ) -> View:
        """What a read or vread's ``_summary`` and ``_elements`` ask to be shown of the
        record (400 if they cannot be honoured); the gate's read, its decision and its
        audit entry are the same whatever is asked: a view is cut from what the gate
        gives, after it, and only ever leaves elements out."""
        if not params:
            return FULL
        rt = resource_type_named(type_name)
        try:
            return asked_view(rt.name, params, search=False, strict=strict).view
        except ViewError as error:
            raise bad_request(str(error)) from None

    def read_later(
        self,
        caller: Caller,
        type_name: str,
        resource_id: str,
        *,
        may_block: bool = True,
        prefetched: Prefetched | None = None,
    ) -> Future[Opened]:
        """``read`` with the audit entry queued (``Gate.read_later``): the record may be
        answered (``read_answer``) only once the future gives it; the future's errors are
        the gate's (``translated`` turns them into FHIR errors)."""
        rt = resource_type_named(type_name)
        with translated():
            return self.gate.read_later(
                caller, rt, checked_id(resource_id), may_block=may_block, prefetched=prefetched
            )

    async def prefetch(self, caller: Caller, type_name: str, resource_id: str) -> Prefetched:
        """PostgreSQL: a read by id's facts read on the event loop (``Gate.prefetch``), for
        ``read_later`` (``prefetched``, ``may_block=False``) in the same turn of the loop;
        ``WouldBlock`` (nothing read, recorded or spent) when the read must be made in a
        worker thread instead."""
        rt = resource_type_named(type_name)
        with translated():
            return await self.gate.prefetch(caller, rt, checked_id(resource_id))

    @staticmethod
    def read_answer(opened: Opened, base: str, view: View = FULL) -> FhirResponse:
        return FhirResponse(200, viewed(opened, view).body, version_headers(opened.head, base))

    def vread(
        self,
        caller: Caller,
        type_name: str,
        resource_id: str,
        version: str,
        base: str,
        params: Sequence[tuple[str, str]] = (),
        *,
        strict: bool = False,
    ) -> FhirResponse:
        rt = resource_type_named(type_name)
        if not version.isdigit() or len(version) > 9:
            raise bad_request("a version id is a positive integer")
        view = self.read_view(type_name, params, strict=strict)
        with translated():
            opened = self.gate.vread(caller, rt, checked_id(resource_id), int(version))
        return self.read_answer(opened, base, view)

    def history(
        self,
        caller: Caller,
        type_name: str,
        resource_id: str,
        base: str,
        params: Sequence[tuple[str, str]] = (),
    ) -> FhirResponse:
        """Instance history: pages of one record's versions the caller may read, with a
        total. Every page of one answer is as of the first page's settled time, sealed
        with where the page starts in its links (``rest/cursor.py``): a version written
        while a client pages is in no page and not older than any page's
        ``meta.lastUpdated``, so the client's next poll ``_since`` it has it."""
        rt = resource_type_named(type_name)
        asked = history_query(params, self.search_settings.zone)
        if asked.offset != 0:
            raise bad_request("_offset of a history is taken only from a page's links")
        resource_id = checked_id(resource_id)
        key = self.gate.vault.paging_key
        bound = (caller.principal, type_name, resource_id, asked.since_us)
        position = (
            None if asked.cursor is None else cursor.opened_instance(key, *bound, asked.cursor)
        )
        count = self._history_count(asked)
        with translated():
            as_of = self.gate.settled_now() if position is None else position.as_of_us
            found = self.gate.history(
                caller,
                rt,
                resource_id,
                since_us=asked.since_us,
                as_of_us=as_of,
                start=None if position is None else position.start,
                count=count,
            )

        def sealed(start: int | None) -> str | None:
            return None if start is None else cursor.seal_instance(key, *bound, start, as_of)

        links = bundles.history_links(
            f"{base}/{type_name}/{resource_id}/_history",
            asked.repeated,
            # As asked: without a _count every version is on the one page (no next link),
            # and the self link says so; the number found there was a _count the client
            # never sent (``_count=0`` after a poll with nothing new).
            count=count,
            at=asked.cursor,
            following=sealed(found.following),
            previous=sealed(found.previous),
        )
        return FhirResponse(
            200,
            bundles.history(base, found.versions, total=found.total, links=links, as_of_us=as_of),
        )

    def history_of_many(
        self,
        caller: Caller,
        type_name: str | None,
        params: Sequence[tuple[str, str]],
        base: str,
    ) -> FhirResponse:
        """Type-level (``type_name``) or system-level (None) history: pages of versions
        read as a search reads (``gate/history.py``). No total: counting would mean
        judging every version the caller cannot see. Where a page starts goes back and
        forth only as a sealed cursor (``rest/cursor.py``): a position among candidates
        would tell how many versions the caller may not read were passed over."""
        rt = resource_type_named(type_name) if type_name is not None else None
        asked = history_query(params, self.search_settings.zone)
        if asked.offset != 0:
            raise bad_request(
                "_offset of a type or system history is taken only from a page's next link"
            )
        key = self.gate.vault.paging_key
        bound = (caller.principal, type_name, asked.since_us)
        position = None if asked.cursor is None else cursor.opened(key, *bound, asked.cursor)
        start = None if position is None else position.start
        count = self._history_count(asked) or self.search_settings.default_count
        with translated():
            # A later page is of the answer the first page began: as of the same instant.
            as_of = (
                position.as_of_us
                if position is not None and position.as_of_us is not None
                else self.gate.settled_now()
            )
            page, following = history_versions(
                self.gate, caller, rt, since_us=asked.since_us, start=start, count=count
            )
        url = f"{base}/{type_name}/_history" if type_name is not None else f"{base}/_history"
        links = bundles.history_links(
            url,
            asked.repeated,
            count=count,
            at=asked.cursor,
            following=None if following is None else cursor.seal(key, *bound, following, as_of),
        )
        return FhirResponse(
            200, bundles.history(base, page, total=None, links=links, as_of_us=as_of)
        )

    def _history_count(self, asked: HistoryQuery) -> int | None:
        if asked.count is None:
            return None
        return min(asked.count, self.search_settings.max_count)

    def parse_search(
        self,
        type_name: str,
        params: Sequence[tuple[str, str]],
        *,
        strict: bool,
        base: str | None = None,
    ) -> SearchQuery:
        """``base``: the FHIR base the client reached, at which an absolute reference in
        the criteria names a record here (``query.parse_query``)."""
        rt = resource_type_named(type_name)
        with translated():
            return parse_query(
                rt,
                params,
                strict=strict,
                zone=self.search_settings.zone,
                default_count=self.search_settings.default_count,
                max_count=self.search_settings.max_count,
                # ``ap`` is measured from the services' clock, as the AuditEvent search's
                # is (the simulator's runs keep a clock of their own).
                now=self.gate.vault.clock(),
                base=base,
            )

    def parse_criteria(self, rt: ResourceType, params: Sequence[tuple[str, str]]) -> SearchQuery:
        """The search that conditional criteria (If-None-Exist, ``[type]?[criteria]``)
        name; 400 unless they are search parameters that filter (strict: a parameter the
        server does not understand is refused, never ignored, since ignoring it would
        match more than the client meant), and unless each identifier is one value.

        A conditional interaction is about one record: an identifier listed as
        ``a,b,c`` would test many numbers for one throttled refusal (a conditional
        create that matches a hidden record counts as one failed registration)."""
        for name, _ in params:
            if name.partition(":")[0] in _NOT_CRITERIA:
                raise bad_request(f"'{safe_name(name)}' is not a search criterion")
        query = self.parse_search(rt.name, params, strict=True)
        if not (query.ids or query.patients or query.last_updated or query.terms or query.dates):
            raise bad_request("a conditional interaction needs search criteria, e.g. ?identifier=")
        if any(
            term.param.name == "identifier" and len(term.alternatives) > 1 for term in query.terms
        ):
            raise bad_request("conditional criteria name one identifier, not a list")
        return query

    def search(
        self,
        caller: Caller,
        type_name: str,
        params: Sequence[tuple[str, str]],
        base: str,
        *,
        strict: bool,
    ) -> FhirResponse:
        sealed, params = _sealed_offset(params)
        query = self.parse_search(type_name, params, strict=strict, base=base)
        key, rt_name = self.gate.vault.paging_key, query.resource_type.name
        bound = offsets.criteria(query.applied)
        now_s = int(self.gate.vault.clock().timestamp())
        sorted_search = bool(query.sort)
        if sealed is not None and offsets.is_cursor(sealed):
            if not query.pages_by_cursor:
                raise bad_request("_offset of a search sorted by a record's values is a position")
            query.after = offsets.opened_cursor(
                key, caller.principal, rt_name, bound, sealed, sorted_search=sorted_search
            )
            # Applied, as a position would be: the ledger names the parameters a search used.
            query.applied.append(("_offset", "cursor"))
        elif sealed is not None:
            query.offset = offsets.opened(key, caller.principal, rt_name, bound, sealed, now_s)
            query.offset_issued = True
            query.applied.append(("_offset", str(query.offset)))
        with translated():
            # A search by ``_lastUpdated`` is how a client polls for changes: its Bundle
            # is as of a settled time, as a history Bundle is (``bundles.history``); so
            # is a page that moves on by cursor, on PostgreSQL (``Gate.cursor_now``).
            as_of = (
                self.gate.settled_now()
                if any(name.partition(":")[0] == "_lastUpdated" for name, _ in query.applied)
                else self.gate.cursor_now()
                if offsets.moves_by_cursor(query, withheld=withholds_counts(caller, query))
                else None
            )
            query.as_of_us = as_of
            items, total = self.gate.search(caller, query)
            extra, cut = included(
                self.gate, caller, query, items, max_count=self.search_settings.max_count
            )
        # A search that may tell only what it shows (gate.withholds_counts): no total, a
        # next link after a full page, and offsets sealed for this caller and criteria,
        # each issued once the records before it were shown (and named) to the caller.
        withheld = withholds_counts(caller, query)

        def position(at: int) -> str:
            if not withheld or at == 0:
                return str(at)
            return offsets.seal(key, caller.principal, rt_name, bound, at, now_s)

        # The default order, and a sort by ``_id`` or ``_lastUpdated``, move on by cursor
        # (``rest/offsets.py``): after the page's last match, wherever records written or
        # deleted meanwhile put it.
        following = (
            None
            if withheld or not query.pages_by_cursor or query.following is None
            else offsets.seal_cursor(
                key,
                caller.principal,
                rt_name,
                bound,
                query.following,
                sorted_search=sorted_search,
            )
        )
        shown_total = None if withheld else total
        links = bundles.paging_links(
            f"{base}/{type_name}",
            query.applied,
            count=query.count,
            offset=query.offset,
            total=shown_total,
            full=len(items) >= query.count,
            position=position,
            at=sealed if query.after is not None else None,
            following=following,
        )
        if query.summary_count:
            # A count has no pages: a pager following ``next`` searched total / _count
            # times for nothing, each search recorded. Its self link is the count asked
            # for, with no page size or position to shape it.
            counted = [pair for pair in query.applied if pair[0] not in ("_count", "_offset")]
            links = [bundles.self_link(f"{base}/{type_name}", counted, 0)]
        issues = [
            Issue(
                "not-supported",
                f"search parameter '{name}' is not supported and was ignored",
                severity="warning",
            )
            for name in query.ignored
        ]
        issues += [
            Issue(
                "not-found",
                f"_elements: '{name}' is not an element of {type_name} and was ignored",
                severity="warning",
            )
            for name in query.ignored_elements
        ]
        if cut:
            issues.append(
                Issue(
                    "too-costly",
                    f"_revinclude returned the first {self.search_settings.max_count} "
                    "resources of each type; page with a smaller _count for the rest",
                    severity="warning",
                )
            )
        notice = outcome(issues) if issues else None
        # Cut after the includes were found (from what the caller may see of the page):
        # FHIR applies _elements to the matches only; a summary form to every resource.
        matches = [viewed(item, query.view) for item in items]
        others = [viewed(item, View(summary=query.view.summary)) for item in extra]
        return FhirResponse(
            200,
            bundles.searchset(
                base,
                matches,
                total=shown_total,
                links=links,
                included=others,
                outcome=notice,
                as_of_us=as_of,
            ),
        )

    def everything(
        self, caller: Caller, patient_id: str, params: Sequence[tuple[str, str]], base: str
    ) -> FhirResponse:
        asked = everything_query(params, self.search_settings.max_count, self.search_settings.zone)
        patient_id = checked_id(patient_id)
        # Its pages move on by cursor, as a search's do (``rest/offsets.py``), sealed for
        # this caller, this patient's chart and the criteria.
        key, chart = self.gate.vault.paging_key, f"Patient/{patient_id}/$everything"
        bound = offsets.criteria(asked.repeated)
        after, began = (
            (None, None)
            if asked.cursor is None
            else offsets.opened_chart_cursor(key, caller.principal, chart, bound, asked.cursor)
        )
        with translated():
            # As of a settled time, as a history Bundle is, whether or not it is asked
            # ``_since`` (stop 66): the first call of a poller's loop asks without it, and
            # its ``meta.lastUpdated`` is the next one's ``_since``.
            as_of = self.gate.settled_now()
            # The first page's time, or this one's: the first, or a cursor's from before
            # stop 66, which had the patient first (as every patient shown by now is).
            began = as_of if began is None else began
            shown = self.gate.everything(
                caller,
                patient_id,
                offset=asked.offset,
                after=after,
                count=asked.count,
                types=asked.types,
                since_us=asked.since_us,
                care=asked.care,
                as_of_us=as_of,
                began_us=began,
            )
            page, total = shown.records, shown.total
            outside = [
                reference
                for reference in _outside_references(page)
                if asked.types is None or reference[0] in asked.types
            ]
            referenced = self.gate.include(caller, outside)
        url = f"{base}/Patient/{patient_id}/$everything"
        if asked.count is None:
            # Not paged: every record from the offset is on this page. The link is the
            # request's own (R4 search.html: the parameters used), not a _count= of the
            # total that no client asked for.
            at = [("_offset", asked.cursor)] if asked.cursor is not None else []
            links = [bundles.self_link(url, [*asked.repeated, *at], asked.offset)]
        else:
            following = (
                None
                if shown.following is None
                else offsets.seal_chart_cursor(
                    key, caller.principal, chart, bound, shown.following, began
                )
            )
            links = bundles.paging_links(
                url,
                asked.repeated,
                count=asked.count,
                offset=shown.offset,
                total=total,
                at=asked.cursor,
                following=following,
            )
        # What the records refer to outside the compartment is included, not matched:
        # R4 Bundle.total counts the matches alone, and these repeat on pages.
        return FhirResponse(
            200,
            bundles.searchset(
                base, page, total=total, links=links, included=referenced, as_of_us=as_of
            ),
        )

    # --- writes ----------------------------------------------------------------------------

    def create(
        self,
        caller: Caller,
        type_name: str,
        body: bytes,
        base: str,
        *,
        prefer: str | None,
        if_none_exist: str | None = None,
    ) -> FhirResponse:
        rt = resource_type_named(type_name)
        resource = validate_resource(parse_json(body), rt.name, self.limits)
        query = self.criteria_of(rt, if_none_exist) if if_none_exist else None
        unless_held: tuple[bytes, ...] = ()
        if query is not None:
            existing = self.matching(caller, query)
            if existing is not None:
                return written(200, existing.head, existing.body, base, prefer, found=True)
            unless_held = self.identifier_tokens(query)
        resource_id = str(uuid.uuid4())
        operation = Put(
            rt, resource_id, resource, fresh=True, method=Method.POST, unless_held=unless_held
        )
        with translated():
            try:
                [result] = self.gate.write(caller, [operation])
            except MatchedMeanwhile:
                # Another request made the match since the search: answered with it, as
                # the search would now answer (a second search, in the ledger as any).
                existing = None if query is None else self.matching(caller, query)
                if existing is None:
                    raise
                return written(200, existing.head, existing.body, base, prefer, found=True)
        return written(201, result.head, result.body, base, prefer)

    def identifier_tokens(self, query: SearchQuery) -> tuple[bytes, ...]:
        """The tokens a Patient holds, every one, when conditional criteria made only of
        identifiers match it (``Put.unless_held``); none for criteria of anything else,
        which the gate does not look at again when it writes, nor for other types: a
        duplicate of another record splits no one's history, and a record of another
        type that the caller reads only in part (a sensitive result) would be told of by
        a refusal its search does not give (``Gate.refuse_unseen_matches``)."""
        if not query.resource_type.is_patient:
            return ()
        if query.ids or query.patients or query.last_updated or query.dates:
            return ()
        if not query.terms or any(term.param.name != "identifier" for term in query.terms):
            return ()
        rt_name = query.resource_type.name
        return tuple(
            self.gate.vault.token(rt_name, term.param.name, value, clear=term.param.clear)
            for term in query.terms
            for alternative in term.alternatives
            for value in alternative
        )

    def criteria_of(self, rt: ResourceType, criteria: str) -> SearchQuery:
        """The search If-None-Exist names (``[type]?`` before it is allowed)."""
        from urllib.parse import parse_qsl

        return self.parse_criteria(rt, parse_qsl(criteria.split("?", 1)[-1]))

    def matching(self, caller: Caller, query: SearchQuery) -> Opened | None:
        """The one record a conditional create's criteria match, or None; 412 for more
        than one, 409 where only records the caller may not see match (a Patient's)."""
        query.count = 2
        with translated():
            items, total = self.gate.search(caller, query)
        if total > 1:
            raise FhirError.of(412, "duplicate", "If-None-Exist matches more than one resource")
        if not items:
            with translated():
                self.gate.refuse_unseen_matches(caller, query, total)
        return items[0] if items else None

    def update(
        self,
        caller: Caller,
        type_name: str,
        resource_id: str,
        body: bytes,
        base: str,
        *,
        if_match: str | None,
        prefer: str | None,
        if_none_match: str | None = None,
    ) -> FhirResponse:
        rt = resource_type_named(type_name)
        checked_id(resource_id)
        expected = parse_etag(if_match)
        unwanted = parse_etags(if_none_match)
        resource = validate_resource(parse_json(body), rt.name, self.limits)
        if resource.get("id") != resource_id:
            raise bad_request("the resource's id must match the id in the URL", code="invariant")
        with translated():
            operation = Put(
                rt,
                resource_id,
                resource,
                if_match=expected,
                if_none_match=unwanted,
                method=Method.PUT,
            )
            [result] = self.gate.write(caller, [operation])
        return written(201 if result.created else 200, result.head, result.body, base, prefer)

    def delete(
        self,
        caller: Caller,
        type_name: str,
        resource_id: str,
        *,
        if_match: str | None,
        if_none_match: str | None = None,
    ) -> FhirResponse:
        rt = resource_type_named(type_name)
        expected = parse_etag(if_match)
        operation = Delete(rt, checked_id(resource_id), expected, parse_etags(if_none_match))
        with translated():
            try:
                [result] = self.gate.write(caller, [operation])
            except NotFound as unknown:
                conflict = failed_precondition(unknown, rt.name, resource_id, expected)
                if conflict is not None:
                    raise conflict from None
                if not deletes_nothing(unknown, rt.name, resource_id, expected):
                    raise
                return FhirResponse(204, None)
        return FhirResponse(204, None, {"ETag": bundles.etag(result.head.version_id)})


def deletes_nothing(
    refused: NotFound, type_name: str, resource_id: str, if_match: IfMatch | None
) -> bool:
    """Whether ``refused`` answers a DELETE of ``type_name/resource_id`` whose record is
    not known to its caller, which then succeeds by deleting nothing: R4 http.html#delete,
    "Upon successful deletion, or if the resource does not exist at all, the server
    should return ... 204 No Content" (a client replaying a Bulk Data export's
    ``deleted`` deletes records it never held). An id never used and a record the caller
    may not know of (another clinic's deleted patient, a record withheld whole) are
    refused in the same words (``not_known``), so both delete nothing alike, and the
    gate has recorded the refusal. With If-Match, 412 (``failed_precondition``)."""
    return if_match is None and refused.reference == f"{type_name}/{resource_id}"


def failed_precondition(
    refused: NotFound, type_name: str, resource_id: str, if_match: IfMatch | None
) -> VersionConflict | None:
    """The 412 of a DELETE with ``If-Match`` (``*``, a version or several) whose record
    ``refused`` says is not known to its caller; None where it says something else, or
    no If-Match was sent. Without If-Match the DELETE would succeed (204, deleting
    nothing), so RFC 9110 13.2.1 has the precondition weighed, and where there is no
    current representation it is false (13.1.1): ``*`` has nothing to match, and no
    version named can be current. An id never used and a record the caller may not know
    of are refused in the same words (``not_known``), so they answer 412 alike, in the
    words a deleted record's If-Match gets: no oracle."""
    if if_match is None or refused.reference != f"{type_name}/{resource_id}":
        return None
    return version_conflict(type_name, resource_id, if_match)


def viewed(item: Opened, view: View) -> Opened:
    """``item`` (as the gate let it leave: the caller's view of the record) with only what
    ``view`` asks for; the same item when nothing is taken away."""
    if item.body is None or not view.cuts:
        return item
    body = shown_body(item.head.resource_type, item.body, view)
    return item if body is item.body else Opened(item.head, body)


def written(
    status: int,
    head: Head,
    body: bytes | None,
    base: str,
    prefer: str | None,
    *,
    found: bool = False,
) -> FhirResponse:
    """The answer to a write on its own: the version as its writer may read it unless
    ``Prefer`` asks for less (a Bundle's entries: ``rest/transaction.py``); ``found``:
    a conditional create that found ``head`` and wrote nothing."""
    headers = version_headers(head, base)
    headers["Location"] = headers.pop("Content-Location")
    answer = write_answer(head, body, prefer_return(prefer) or "representation", found=found)
    if answer.outcome is not None:
        return FhirResponse(status, bundles.dumps(answer.outcome), headers)
    return FhirResponse(status, answer.resource, headers)


@dataclass(frozen=True)
class EverythingQuery:
    """What a ``Patient/$everything`` asks for; ``repeated``: the parameters its paging
    links carry."""

    count: int | None = None
    offset: int = 0
    types: frozenset[str] | None = None
    since_us: int | None = None
    care: CarePeriod | None = None
    repeated: tuple[tuple[str, str], ...] = ()
    #: A sealed cursor (``rest/offsets.py``) from a next link, in place of ``offset``.
    cursor: str | None = None


#: ``$everything``'s parameters of one value (R4 Patient-everything: 0..1 each).
_ONCE_IN_EVERYTHING = ("start", "end", "_since", "_count")


def everything_query(
    params: Sequence[tuple[str, str]], max_count: int, zone: tzinfo
) -> EverythingQuery:
    """The parameters of ``$everything`` (FHIR R4 Patient-everything: ``start``, ``end``,
    ``_since``, ``_type``, ``_count``) and ``_offset`` for its paging links: a position,
    or the sealed cursor of a next link (once). Any other parameter is refused: it could
    be a filter the caller expects to narrow the result."""
    count: int | None = None
    offset = 0
    given = [value for name, value in params if name == "_offset"]
    cursor = next((value for value in given if offsets.is_cursor(value)), None)
    if cursor is not None and len(given) > 1:
        raise bad_request("_offset is given once")
    types: frozenset[str] | None = None
    since_us: int | None = None
    start = end = None
    repeated: list[tuple[str, str]] = []
    for name in _ONCE_IN_EVERYTHING:
        if sum(1 for given_name, _ in params if given_name == name) > 1:
            # 0..1 in R4: which of two a server took would be its choice, not the caller's.
            raise bad_request(f"$everything: {name} is given once")
    for name, value in params:
        if name == "_offset" and value == cursor:
            continue
        if name in ("_count", "_offset"):
            number = _whole_number(name, value)
            if name == "_count":
                count = min(number, max_count)
            else:
                offset = number
            continue
        if name in LAYOUT_PARAMS:
            continue
        if name == "_type":
            types = _types(value, types)
        elif name == "_since":
            since_us = to_micros(_instant(name, value, zone))
        elif name in ("start", "end"):
            moment = _date(name, value, zone)
            if name == "start":
                start = moment.low
            else:
                end = moment.high
        else:
            raise bad_request(f"$everything does not support '{safe_name(name)}'")
        repeated.append((name, value))
    if start is not None and end is not None and end <= start:
        raise bad_request("$everything: end must not be before start")
    care = CarePeriod(start, end) if start is not None or end is not None else None
    return EverythingQuery(count, offset, types, since_us, care, tuple(repeated), cursor)


@dataclass(frozen=True)
class HistoryQuery:
    """What a history interaction asks for (``_count``, ``_since``; ``_offset`` for its
    paging links: a sealed cursor, ``rest/cursor.py``; a number is kept apart, and only
    0 is taken); ``repeated``: what its paging links carry."""

    count: int | None = None
    offset: int = 0
    cursor: str | None = None
    since_us: int | None = None
    repeated: tuple[tuple[str, str], ...] = ()


def history_query(params: Sequence[tuple[str, str]], zone: tzinfo) -> HistoryQuery:
    """``_count``, ``_offset`` and ``_since`` of a history interaction; anything else
    (``_at``, ``_list``, ``_sort``...) is refused rather than ignored."""
    count: int | None = None
    offset = 0
    given: str | None = None
    since_us: int | None = None
    repeated: list[tuple[str, str]] = []
    for name, value in params:
        if name == "_count":
            count = _whole_number(name, value)
        elif name == "_offset" and (value.isdigit() or len(value) != cursor.LENGTH):
            offset = _whole_number(name, value)
        elif name == "_offset":
            given = value
        elif name == "_since":
            since_us = to_micros(_instant(name, value, zone))
            repeated.append((name, value))
        elif name not in LAYOUT_PARAMS:
            raise bad_request(f"_history does not support '{safe_name(name)}'")
    return HistoryQuery(count, offset, given, since_us, tuple(repeated))


def _sealed_offset(
    params: Sequence[tuple[str, str]],
) -> tuple[str | None, list[tuple[str, str]]]:
    """A search's sealed ``_offset`` or cursor (``rest/offsets.py``), if it was sent one, and the
    other parameters; a position (digits) stays among them. One ``_offset`` only, when
    one is sealed: a second beside it would say where the page starts otherwise."""
    given = [value for name, value in params if name == "_offset"]
    sealed = [value for value in given if offsets.is_sealed(value) or offsets.is_cursor(value)]
    if not sealed:
        return None, list(params)
    if len(given) > 1:
        raise bad_request("_offset is given once")
    return sealed[0], [(name, value) for name, value in params if name != "_offset"]


def _whole_number(name: str, value: str) -> int:
    if not value.isdigit() or len(value) > 9:
        raise bad_request(f"{name} must be a non-negative integer")
    return int(value)


def _types(value: str, already: frozenset[str] | None) -> frozenset[str]:
    names = [part.strip() for part in value.split(",")]
    if not names or not all(names):
        raise bad_request("_type must be a comma-separated list of resource types")
    unknown = [name for name in names if name not in RESOURCE_TYPES]
    if unknown:
        raise bad_request(f"_type names unsupported resource type '{safe_name(unknown[0])}'")
    given = frozenset(names)
    # R4 Patient-everything: _type is 0..*, "one or more parameters, each containing one
    # or more comma-delimited FHIR resource types": repeated, they add types (client
    # libraries send a list so; intersecting answered two types with an empty chart,
    # integrator round of stop 66).
    return given if already is None else already | given


def _date(name: str, value: str, zone: tzinfo) -> DateRange:
    try:
        return parse_date(from_query(value), zone)
    except DateFormatError as error:
        raise bad_request(f"{name} must be a FHIR date or dateTime") from error


def _instant(name: str, value: str, zone: tzinfo) -> datetime:
    moment = _date(name, value, zone).low
    assert moment is not None  # noqa: S101 - parse() bounds both sides
    return moment


def _outside_references(items: Sequence[Opened]) -> list[tuple[str, str]]:
    """References from the patient's resources to resources outside their compartment."""
    inside = {(item.head.resource_type, item.head.resource_id) for item in items}
    outside: dict[tuple[str, str], None] = {}
    for item in items:
        if item.body is None:
            continue
        for node in walk_references(jsonio.load(item.body)):
            target = parse_reference(node)
            if target is None or target in inside:
                continue
            rt = RESOURCE_TYPES.get(target[0])
            if rt is not None and not rt.is_patient_data:
                outside[target] = None
    return list(outside)


def write_response_entry(result: WriteResult, base: str) -> dict[str, Any]:
    """The ``response`` element of a batch/transaction entry for a write."""
    head = result.head
    if head.deleted:
        return {"status": "204 No Content", "etag": bundles.etag(head.version_id)}
    return version_response_entry(head, "201 Created" if result.created else "200 OK")


def version_response_entry(head: Head, status: str) -> dict[str, Any]:
    """The ``response`` of an entry answering with the version ``head``: where it is
    (with its version, as ``Location`` is), its ETag and Last-Modified, as the same
    request alone answers in its headers."""
    return {
        "status": status,
        "location": f"{head.resource_type}/{head.resource_id}/_history/{head.version_id}",
        "etag": bundles.etag(head.version_id),
        "lastModified": fhir_instant(from_micros(head.last_updated_us)),
    }
