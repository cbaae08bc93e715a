"""The parameters of ``GET /fhir/AuditEvent``, read into a ledger query: what a SIEM's
FHIR client sends (integrator round 67 added ``_sort``, ``type``, ``subtype``,
``entity``, ``_lastUpdated`` and ``_total`` to round 66's ``patient``, ``agent``,
``date``, ``outcome``, ``_count`` and ``_after``). Anything else, or a malformed value,
is ``400`` with an OperationOutcome: a parameter ignored would answer a wider search
than the one asked for, as though it were it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from carevault.clock import to_micros
from carevault.fhir import dates
from carevault.fhir.outcome import FhirError, Issue
from carevault.fhir.query import date_value
from carevault.ledger.audit import Token
from carevault.rest.errors import translated
from carevault.rest.interactions import LAYOUT_PARAMS
from carevault.vault.store import Vault

#: ``entity``: a relative reference, ``Type/id`` (R4 ids: 1-64 of A-Z a-z 0-9 - .).
_REFERENCE = re.compile(r"^([A-Z][A-Za-z]{1,63})/([A-Za-z0-9\-.]{1,64})$")
#: The paging cursors: the search's next links carry them, and a caller may too.
CURSORS = ("_after", "_before")
_SORTS = {"date": False, "-date": True, "_lastUpdated": False, "-_lastUpdated": True}
_TOTALS = ("none", "estimate", "accurate")


@dataclass
class AuditSearch:
    """A search as read: the ledger query's fields, the patients whose accesses it
    releases (id, pseudonym), and whether ``Bundle.total`` is asked for."""

    query: dict[str, Any] = field(default_factory=lambda: {"count": 50})
    released: dict[str, str] = field(default_factory=dict)
    total: bool = False


def _number(name: str, value: str) -> int:
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise FhirError(400, [Issue("invalid", f"{name} is an entry number")])
    return int(value)


def _tokens(name: str, value: str) -> frozenset[Token]:
    """``code``, ``system|code`` or a comma-separated list of them (any may match)."""
    tokens: set[Token] = set()
    for item in value.split(","):
        system, bar, code = item.rpartition("|")
        if not code or len(item) > 200:
            raise FhirError(400, [Issue("invalid", f"{name}: {item[:40]!r} is not a token")])
        tokens.add((system if bar else None, code))
    return frozenset(tokens)


def _narrow_by_date(
    query: dict[str, Any], name: str, value: str, zone: ZoneInfo, now: datetime
) -> None:
    """Narrow ``query`` by one ``date`` (or ``_lastUpdated``: for an AuditEvent, its
    ``recorded`` time) value, read as the FHIR search reads every date (``date_value``:
    R4's prefixes ``ap`` included, the value's precision, the group's zone for a time
    written without one). Repeated, each must hold: windows intersect."""
    with translated():
        prefix, search = date_value(name, value, zone, now)
    if prefix is dates.Prefix.NE:
        window = dates.instant_window(dates.Prefix.EQ, search)
        assert window.low is not None and window.high is not None  # noqa: S101 - eq is bounded
        query["outside_us"] = (
            *query.get("outside_us", ()),
            (to_micros(window.low), to_micros(window.high)),
        )
        return
    window = dates.instant_window(prefix, search)
    if window.low is not None:
        since = to_micros(window.low)
        query["since_us"] = max(since, query.get("since_us", since))
    if window.high is not None:
        until = to_micros(window.high)
        query["until_us"] = min(until, query.get("until_us", until))


def read_search(
    params: list[tuple[str, str]], vault: Vault, zone: ZoneInfo, now: datetime
) -> AuditSearch:
    """The search ``params`` ask for (vault look-ups: a patient's pseudonym, whose record
    an ``entity`` is). Run in a worker thread."""
    found = AuditSearch()
    query = found.query
    once: set[str] = set()
    for name, value in params:
        if name in ("_sort", "_total", "_count", *CURSORS):
            if name in once:
                raise FhirError(400, [Issue("invalid", f"{name} is given twice")])
            once.add(name)
        if name == "patient":
            patient_id = value.removeprefix("Patient/")
            pseudonyms = vault.patient_pseudonyms([patient_id])
            query["patient_pseudonym"] = next(iter(pseudonyms.values()), "unknown-patient")
            if pseudonyms:
                found.released[patient_id] = pseudonyms[patient_id]
        elif name == "entity":
            matched = _REFERENCE.match(value)
            if matched is None:
                raise FhirError(
                    400, [Issue("invalid", "entity is a reference, Type/id (Patient/123)")]
                )
            resource_type, resource_id = matched.groups()
            names = {(resource_type, resource_id)}
            # Who opened a patient's record (any record of theirs) is that patient's
            # access report, released as one, as a search by ``patient`` is.
            owner = vault.patient_of(resource_type, resource_id)
            if owner is not None:
                found.released[owner[0]] = owner[1]
            elif not vault.holds_id(resource_type, resource_id):
                # Attempts at an id no record holds are named by its keyed digest (round
                # 67): an officer searches by the id they were told was typed (round 68).
                names.add((resource_type, vault.unknown_id(resource_type, resource_id)))
            if "entity" in query and query["entity"] != names:
                query["entity"] = frozenset()  # two resources: no entry is about both
            else:
                query["entity"] = frozenset(names)
        elif name == "agent":
            query["principal"] = value
        elif name in ("date", "_lastUpdated"):
            _narrow_by_date(query, name, value, zone, now)
        elif name == "outcome":
            query["outcome"] = {"0": "success", "4": "denied", "8": "failed"}.get(value, value)
        elif name == "type":
            query["types"] = (*query.get("types", ()), _tokens(name, value))
        elif name == "subtype":
            query["subtypes"] = (*query.get("subtypes", ()), _tokens(name, value))
        elif name == "_sort":
            if value not in _SORTS:
                raise FhirError(
                    400, [Issue("not-supported", "_sort is date or -date (newest first)")]
                )
            query["newest_first"] = _SORTS[value]
        elif name == "_total":
            if value not in _TOTALS:
                raise FhirError(400, [Issue("invalid", "_total is none, estimate or accurate")])
            found.total = value == "accurate"
        elif name == "_count":
            if not value.isdigit() or not 1 <= int(value) <= 500:
                raise FhirError(400, [Issue("invalid", "_count must be 1..500")])
            query["count"] = int(value)
        elif name == "_after":
            query["after_seq"] = _number(name, value)
        elif name == "_before":
            query["before_seq"] = _number(name, value)
        elif name in LAYOUT_PARAMS:
            continue
        else:
            raise FhirError(400, [Issue("not-supported", f"unknown search parameter {name}")])
    return found


def page_links(
    base: str, params: list[tuple[str, str]], search: AuditSearch, last_seq: int | None
) -> list[dict[str, str]]:
    """The self link (every parameter as the search used it: R4 search.html, "servers
    SHALL return the parameters that were actually used to process a search") and, after
    a full page, the next: the same search after this page's last entry (before it,
    newest first). A page 2 that dropped the filters would list the whole ledger as the
    search's. ``_total`` is not carried on: each page would count the whole search
    again."""
    query = search.query
    filters = [(n, v) for n, v in params if n not in ("_count", "_total", *CURSORS)]
    cursors = [(n, v) for n, v in params if n in CURSORS]
    total = [("_total", "accurate")] if search.total else []
    count = [("_count", str(query["count"]))]
    links = [
        {
            "relation": "self",
            "url": f"{base}/AuditEvent?{urlencode(filters + count + cursors + total)}",
        }
    ]
    if last_seq is not None:
        cursor = "_before" if query.get("newest_first") else "_after"
        kept = [(n, v) for n, v in cursors if n != cursor]
        following = [*filters, *count, *kept, (cursor, str(last_seq))]
        links.append({"relation": "next", "url": f"{base}/AuditEvent?{urlencode(following)}"})
    return links
