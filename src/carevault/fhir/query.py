"""Parsing FHIR search parameters into a query the vault can run.

Search values never appear in error messages: they may be names or HKID numbers.
Parameter names do, cleaned of anything but the characters a name may hold.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import tzinfo

from carevault.fhir import dates, normalise
from carevault.fhir.indexing import any_term, reference_term, system_term
from carevault.fhir.registry import ParamKind, ResourceType, SearchParam

_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_PARAM_NAME = re.compile(r"[^A-Za-z0-9_:.\-]")

SUPPORTED_RESULT_PARAMS = frozenset({"_count", "_offset", "_sort", "_total", "_format", "_summary"})


class SearchError(ValueError):
    """The search cannot be run as asked (400 Bad Request)."""


def safe_name(name: str) -> str:
    """A parameter name fit to quote back in an error message."""
    return _PARAM_NAME.sub("?", name)[:40]


@dataclass(frozen=True)
class TermCondition:
    """Matches when, for some alternative, the resource has every term of it."""

    param: SearchParam
    alternatives: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class DateCondition:
    param: SearchParam
    prefix: dates.Prefix
    search: dates.DateRange
    covers: tuple[tuple[str, ...], ...] | None


@dataclass(frozen=True)
class PatientCondition:
    patient_ids: tuple[str, ...]


@dataclass(frozen=True)
class LastUpdatedCondition:
    prefix: dates.Prefix
    search: dates.DateRange


@dataclass(frozen=True)
class SortKey:
    name: str
    descending: bool


@dataclass
class SearchQuery:
    resource_type: ResourceType
    ids: list[tuple[str, ...]] = field(default_factory=list)
    patients: list[PatientCondition] = field(default_factory=list)
    last_updated: list[LastUpdatedCondition] = field(default_factory=list)
    terms: list[TermCondition] = field(default_factory=list)
    dates: list[DateCondition] = field(default_factory=list)
    sort: list[SortKey] = field(default_factory=list)
    count: int = 20
    offset: int = 0
    summary_count: bool = False
    #: (name, value) pairs that were applied, for the self link.
    applied: list[tuple[str, str]] = field(default_factory=list)
    #: Names of parameters ignored under lenient handling, reported in an outcome.
    ignored: list[str] = field(default_factory=list)

    @property
    def needs_decryption(self) -> bool:
        """Whether the vault must open candidates to filter or sort them."""
        sorts_on_date = any(key.name not in ("_lastUpdated", "_id") for key in self.sort)
        return bool(self.dates) or sorts_on_date


def parse_query(
    resource_type: ResourceType,
    params: Sequence[tuple[str, str]],
    *,
    strict: bool,
    zone: tzinfo,
    default_count: int,
    max_count: int,
) -> SearchQuery:
    query = SearchQuery(resource_type=resource_type, count=default_count)
    for raw_name, value in params:
        name, _, modifier = raw_name.partition(":")
        if name in SUPPORTED_RESULT_PARAMS:
            _result_param(query, name, value, max_count)
        elif name == "_id":
            _reject_modifier(raw_name, modifier)
            ids = tuple(part for part in value.split(",") if part)
            if not ids or not all(_ID.match(part) for part in ids):
                raise SearchError("_id must be one or more resource ids")
            query.ids.append(ids)
        elif name == "_lastUpdated":
            _reject_modifier(raw_name, modifier)
            prefix, search = _date_value(name, value, zone)
            query.last_updated.append(LastUpdatedCondition(prefix, search))
        else:
            param = resource_type.param(name)
            if param is None:
                if strict:
                    raise SearchError(
                        f"unknown search parameter '{safe_name(raw_name)}' for {resource_type.name}"
                    )
                query.ignored.append(safe_name(raw_name))
                continue
            _reject_modifier(raw_name, modifier)
            _param_condition(query, param, value, zone)
        query.applied.append((raw_name, value))
    return query


def _reject_modifier(raw_name: str, modifier: str) -> None:
    if modifier:
        raise SearchError(f"modifier in '{safe_name(raw_name)}' is not supported")


def _result_param(query: SearchQuery, name: str, value: str, max_count: int) -> None:
    if name == "_count":
        query.count = min(_non_negative(name, value), max_count)
    elif name == "_offset":
        query.offset = _non_negative(name, value)
    elif name == "_sort":
        for key in value.split(","):
            descending = key.startswith("-")
            key_name = key.lstrip("-")
            allowed = ("_lastUpdated", "_id", *query.resource_type.sort_dates)
            if key_name not in allowed:
                raise SearchError(
                    f"cannot sort {query.resource_type.name} by '{safe_name(key_name)}'; "
                    f"sortable: {', '.join(allowed)}"
                )
            query.sort.append(SortKey(key_name, descending))
    elif name == "_summary":
        if value != "count":
            raise SearchError("only _summary=count is supported")
        query.summary_count = True
    elif name == "_format" and value not in ("json", "application/json", "application/fhir+json"):
        raise SearchError("only JSON is supported (_format=json)")


def _non_negative(name: str, value: str) -> int:
    if not value.isdigit() or len(value) > 9:
        raise SearchError(f"{name} must be a non-negative integer")
    return int(value)


def _date_value(name: str, value: str, zone: tzinfo) -> tuple[dates.Prefix, dates.DateRange]:
    try:
        prefix, text = dates.split_prefix(value)
        return prefix, dates.parse(text, zone)
    except dates.DateFormatError as error:
        raise SearchError(f"{name}: {error}") from None


def _param_condition(query: SearchQuery, param: SearchParam, value: str, zone: tzinfo) -> None:
    if param.kind is ParamKind.DATE:
        if "," in value:
            raise SearchError(f"{param.name}: a date search takes one value (repeat the parameter)")
        prefix, search = _date_value(param.name, value, zone)
        covers = dates.candidate_covers(prefix, search, zone)
        query.dates.append(
            DateCondition(
                param, prefix, search, None if covers is None else tuple(tuple(c) for c in covers)
            )
        )
        return
    parts = [part for part in _split_values(value) if part]
    if not parts:
        raise SearchError(f"{param.name} needs a value")
    if param.patient:
        ids = tuple(_reference_id(param, part, "Patient") for part in parts)
        query.patients.append(PatientCondition(ids))
        return
    alternatives: list[tuple[str, ...]] = []
    for part in parts:
        alternatives.extend(_alternatives(param, part))
    query.terms.append(TermCondition(param, tuple(alternatives)))


def _split_values(value: str) -> list[str]:
    """Split on commas not escaped with a backslash, unescaping as the spec says."""
    parts, current, escaped = [], [], False
    for character in value:
        if escaped:
            current.append(character)
            escaped = False
        elif character == "\\":
            escaped = True
        elif character == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(character)
    parts.append("".join(current))
    return parts


def _alternatives(param: SearchParam, value: str) -> list[tuple[str, ...]]:
    if param.kind is ParamKind.STRING:
        words = normalise.search_prefix(value)
        if not words:
            raise SearchError(f"{param.name} needs letters or characters to search for")
        return [tuple(words)]
    if param.kind is ParamKind.REFERENCE:
        if "/" in value:
            target, _, ident = value.partition("/")
            if param.targets and target not in param.targets:
                raise SearchError(f"{param.name} cannot point at {safe_name(target)}")
            return [(reference_term(target, _checked_id(param, ident)),)]
        ident = _checked_id(param, value)
        return [(reference_term(target, ident),) for target in param.targets]
    return [(_token_term(param, value),)]


def _token_term(param: SearchParam, value: str) -> str:
    if param.telecom_system == "phone":
        return any_term(normalise.phone(value))
    if param.telecom_system == "email":
        return any_term(normalise.email(value))
    if "|" not in value:
        if param.name == "identifier":
            return any_term(normalise.identifier_any(value))
        return any_term(normalise.code(value))
    system, _, code = value.partition("|")
    if not code:
        raise SearchError(f"{param.name}: searching by system alone is not supported")
    text = (
        normalise.identifier_value(system or None, code)
        if param.name == "identifier"
        else (normalise.code(code))
    )
    return system_term(system or None, text)


def _reference_id(param: SearchParam, value: str, expected: str) -> str:
    target, slash, ident = value.rpartition("/")
    if slash and target.split("/")[-1] != expected:
        raise SearchError(f"{param.name} must point at a {expected}")
    return _checked_id(param, ident if slash else value)


def _checked_id(param: SearchParam, ident: str) -> str:
    if not _ID.match(ident):
        raise SearchError(f"{param.name}: not a valid resource id")
    return ident
