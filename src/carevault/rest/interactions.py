"""FHIR RESTful interactions on one resource type: read, vread, create, update,
delete, history, search and Patient/$everything."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from carevault.clock import fhir_instant, from_micros
from carevault.fhir import jsonio
from carevault.fhir.content import DEFAULT_LIMITS, InputLimits
from carevault.fhir.elements import parse_reference, walk_references
from carevault.fhir.outcome import FhirError, Issue, bad_request, outcome
from carevault.fhir.query import SearchQuery, parse_query, safe_name
from carevault.fhir.registry import RESOURCE_TYPES, ResourceType
from carevault.fhir.validate import parse_json, validate_resource
from carevault.gate import Caller, Gate
from carevault.rest import bundles
from carevault.rest.errors import translated
from carevault.rest.includes import included
from carevault.vault.records import Head, Opened, WriteResult
from carevault.vault.writer import Delete, Put

ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_ETAG = re.compile(r'^(?:W/)?"(\d{1,9})"$')
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
    if not ID_PATTERN.match(resource_id):
        raise bad_request("not a valid resource id (1-64 of A-Z a-z 0-9 - .)")
    return resource_id


def parse_etag(value: str | None) -> int | None:
    if value is None:
        return None
    match = _ETAG.match(value.strip())
    if not match:
        raise bad_request('If-Match must be a version ETag such as W/"3"')
    return int(match.group(1))


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

    def read(self, caller: Caller, type_name: str, resource_id: str, base: str) -> FhirResponse:
        rt = resource_type_named(type_name)
        with translated():
            opened = self.gate.read(caller, rt, checked_id(resource_id))
        return FhirResponse(200, opened.body, version_headers(opened.head, base))

    def vread(
        self, caller: Caller, type_name: str, resource_id: str, version: str, base: str
    ) -> FhirResponse:
        rt = resource_type_named(type_name)
        if not version.isdigit() or len(version) > 9:
            raise bad_request("a version id is a positive integer")
        with translated():
            opened = self.gate.vread(caller, rt, checked_id(resource_id), int(version))
        return FhirResponse(200, opened.body, version_headers(opened.head, base))

    def history(self, caller: Caller, type_name: str, resource_id: str, base: str) -> FhirResponse:
        rt = resource_type_named(type_name)
        with translated():
            versions = self.gate.history(caller, rt, checked_id(resource_id))
        return FhirResponse(200, bundles.history(base, versions))

    def parse_search(
        self, type_name: str, params: Sequence[tuple[str, str]], *, strict: bool
    ) -> SearchQuery:
        rt = resource_type_named(type_name)
        with translated():
            return parse_query(
                rt,
                params,
                strict=strict,
                zone=self.search_settings.zone,
                default_count=self.search_settings.default_count,
                max_count=self.search_settings.max_count,
            )

    def search(
        self,
        caller: Caller,
        type_name: str,
        params: Sequence[tuple[str, str]],
        base: str,
        *,
        strict: bool,
    ) -> FhirResponse:
        query = self.parse_search(type_name, params, strict=strict)
        with translated():
            items, total = self.gate.search(caller, query)
            extra, cut = included(
                self.gate, caller, query, items, max_count=self.search_settings.max_count
            )
        links = bundles.paging_links(
            f"{base}/{type_name}",
            query.applied,
            count=query.count,
            offset=query.offset,
            total=total,
        )
        issues = [
            Issue(
                "not-supported",
                f"search parameter '{name}' is not supported and was ignored",
                severity="warning",
            )
            for name in query.ignored
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
        return FhirResponse(
            200,
            bundles.searchset(
                base, items, total=total, links=links, included=extra, outcome=notice
            ),
        )

    def everything(
        self, caller: Caller, patient_id: str, params: Sequence[tuple[str, str]], base: str
    ) -> FhirResponse:
        count, offset = _paging(params, self.search_settings.max_count)
        with translated():
            page, total = self.gate.everything(
                caller, checked_id(patient_id), offset=offset, count=count
            )
            referenced = self.gate.include(caller, _outside_references(page))
        links = bundles.paging_links(
            f"{base}/Patient/{patient_id}/$everything",
            [],
            count=count if count is not None else total,
            offset=offset,
            total=total,
        )
        return FhirResponse(
            200, bundles.searchset(base, [*page, *referenced], total=total, links=links)
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
        if if_none_exist:
            existing = self._existing(caller, rt, if_none_exist)
            if existing is not None:
                return written(200, existing.head, existing.body, base, prefer)
        resource_id = str(uuid.uuid4())
        with translated():
            [result] = self.gate.write(caller, [Put(rt, resource_id, resource, fresh=True)])
        return written(201, result.head, result.body, base, prefer)

    def _existing(self, caller: Caller, rt: ResourceType, criteria: str) -> Opened | None:
        from urllib.parse import parse_qsl

        query = self.parse_search(rt.name, parse_qsl(criteria.split("?", 1)[-1]), strict=True)
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
    ) -> FhirResponse:
        rt = resource_type_named(type_name)
        checked_id(resource_id)
        expected = parse_etag(if_match)
        resource = validate_resource(parse_json(body), rt.name, self.limits)
        if resource.get("id") != resource_id:
            raise bad_request("the resource's id must match the id in the URL", code="invariant")
        with translated():
            [result] = self.gate.write(caller, [Put(rt, resource_id, resource, if_match=expected)])
        return written(201 if result.created else 200, result.head, result.body, base, prefer)

    def delete(
        self, caller: Caller, type_name: str, resource_id: str, *, if_match: str | None
    ) -> FhirResponse:
        rt = resource_type_named(type_name)
        expected = parse_etag(if_match)
        with translated():
            [result] = self.gate.write(caller, [Delete(rt, checked_id(resource_id), expected)])
        return FhirResponse(204, None, {"ETag": bundles.etag(result.head.version_id)})


def written(
    status: int, head: Head, body: bytes | None, base: str, prefer: str | None
) -> FhirResponse:
    headers = version_headers(head, base)
    headers["Location"] = headers.pop("Content-Location")
    returning = _prefer_return(prefer)
    if returning == "minimal":
        return FhirResponse(status, None, headers)
    if returning == "OperationOutcome" or body is None:
        # body None: the writer may write but not read what was written (a record of a
        # patient they do not care for); they are told it was saved, not shown it.
        note = outcome(
            [
                Issue(
                    "informational",
                    f"{head.reference} saved as version {head.version_id}",
                    "information",
                )
            ]
        )
        return FhirResponse(status, bundles.dumps(note), headers)
    return FhirResponse(status, body, headers)


def _prefer_return(prefer: str | None) -> str:
    for part in (prefer or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name.strip() == "return":
            return value.strip().strip('"')
    return "representation"


def _paging(params: Sequence[tuple[str, str]], max_count: int) -> tuple[int | None, int]:
    count: int | None = None
    offset = 0
    for name, value in params:
        if name in ("_count", "_offset"):
            if not value.isdigit() or len(value) > 9:
                raise bad_request(f"{name} must be a non-negative integer")
            if name == "_count":
                count = min(int(value), max_count)
            else:
                offset = int(value)
        elif name not in ("_format",):
            raise bad_request(f"$everything does not support '{safe_name(name)}'")
    return count, offset


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
    return {
        "status": "201 Created" if result.created else "200 OK",
        "location": f"{head.resource_type}/{head.resource_id}/_history/{head.version_id}",
        "etag": bundles.etag(head.version_id),
        "lastModified": fhir_instant(from_micros(head.last_updated_us)),
    }
