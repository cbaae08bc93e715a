"""Parsing FHIR search parameters into a query the vault can run.

Search values never appear in error messages: they may be names or HKID numbers.
Parameter names do, cleaned of anything but the characters a name may hold.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from carevault.clock import utc_now
from carevault.fhir import dates, mediatype, normalise
from carevault.fhir.date_certain import certain_tokens
from carevault.fhir.indexing import any_term, reference_term, system_only_term, system_term
from carevault.fhir.registry import RESOURCE_TYPES, ParamKind, ResourceType, SearchParam
from carevault.fhir.views import FULL, Summary, View, ViewError, asked_view

_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_PARAM_NAME = re.compile(r"[^A-Za-z0-9_:.\-]")

SUPPORTED_RESULT_PARAMS = frozenset({"_count", "_offset", "_sort", "_total", "_format"})

#: How much of each resource is shown (``fhir/views.py``).
VIEW_PARAMS = frozenset({"_summary", "_elements"})

#: Parameters that only shape how the answer is laid out or how the total is counted
#: (ignored with a warning). ``_totalMethod`` is what fhirpy sends with ``count()``.
PRESENTATION_PARAMS = frozenset({"_pretty", "_totalMethod"})


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
    """``covers``: token sets a match has a token of, each (None: any value may match);
    ``certain``: tokens that only a match carries (fhir/date_certain.py)."""

    param: SearchParam
    prefix: dates.Prefix
    search: dates.DateRange
    covers: tuple[tuple[str, ...], ...] | None
    certain: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PatientCondition:
    patient_ids: tuple[str, ...]


@dataclass(frozen=True)
class LastUpdatedCondition:
    prefix: dates.Prefix
    search: dates.DateRange


@dataclass(frozen=True)
class Include:
    """``_include`` (the resources a page's records point at through ``param``) or
    ``_revinclude`` (the ``source`` resources whose ``param`` points at the page's)."""

    source: ResourceType
    param: SearchParam
    target: str
    reverse: bool


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
    includes: list[Include] = field(default_factory=list)
    count: int = 20
    offset: int = 0
    #: The offset came from a paging link this server sealed for this caller and these
    #: criteria (``rest/offsets.py``): every record before it was shown to the caller,
    #: and named in the ledger, on earlier pages. Set only by the REST layer once it has
    #: opened the seal; the gate lets a caller from whom it withholds counts page only so.
    offset_issued: bool = False
    #: A page asked by a sealed cursor (``rest/offsets.py``): the matches strictly after
    #: the record at this ``(last_updated_us, row_id, resource_id)`` in the search's
    #: order (the default, or a sort by ``_id`` and ``_lastUpdated``: ``pages_by_cursor``),
    #: whatever was written or deleted before it since; ``find`` then sets ``offset`` to
    #: how many matches lie at or before it, for the page's other links.
    after: tuple[int, int, str] | None = None
    #: Set by ``find``: the ``(last_updated_us, row_id, resource_id)`` of the page's last
    #: match, where the next page starts (None: the page was empty).
    following: tuple[int, int, str] | None = None
    #: Only records last written at or before this settled time (``db.settled_now``)
    #: match: a page that moves on by cursor in the order records were written (stop
    #: 66) ends at a record stamped by then, and every write not committed when it was
    #: read stamps later, so comes after its cursor. Set by the REST layer.
    as_of_us: int | None = None
    summary_count: bool = False
    #: How much of each matching resource is shown (``_summary``, ``_elements``).
    view: View = FULL
    #: (name, value) pairs that were applied, for the self link.
    applied: list[tuple[str, str]] = field(default_factory=list)
    #: Presentation parameters ignored under lenient handling, reported in an outcome.
    ignored: list[str] = field(default_factory=list)
    #: ``_elements`` names the type has no element of, ignored under lenient handling.
    ignored_elements: list[str] = field(default_factory=list)

    @property
    def sorts_on_encrypted(self) -> bool:
        """Whether ordering needs values only decryption shows."""
        return any(key.name not in ("_lastUpdated", "_id") for key in self.sort)

    @property
    def pages_by_cursor(self) -> bool:
        """Whether a cursor can name a place in this search's order from a record's head
        alone: the default order, or a sort by ``_id`` and ``_lastUpdated``, values in the
        clear that every entry shows. A sort by a date the record holds would put that
        date, the caller's record's, in the link (stop 65): such a search pages by
        position."""
        return not self.sorts_on_encrypted

    @property
    def needs_decryption(self) -> bool:
        """Whether the vault may have to open candidates to filter or sort them."""
        return bool(self.dates) or self.sorts_on_encrypted


def parse_query(
    resource_type: ResourceType,
    params: Sequence[tuple[str, str]],
    *,
    strict: bool,
    zone: tzinfo,
    default_count: int,
    max_count: int,
    now: datetime | None = None,
    base: str | None = None,
) -> SearchQuery:
    """``now``: the moment an ``ap`` (approximately) date is measured from (the clock's
    when not given). ``base``: this server's FHIR base as the client reached it, at which
    an absolute reference (``[base]/Patient/x``) is read as the relative one it names;
    without it, or at another base, an absolute reference is refused."""
    query = SearchQuery(resource_type=resource_type, count=default_count)
    moment = now or utc_now()
    views: list[tuple[str, str]] = []
    for raw_name, value in params:
        name, _, modifier = raw_name.partition(":")
        if name in VIEW_PARAMS:
            _reject_modifier(raw_name, modifier)
            views.append((name, value))
            continue
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
            prefix, search = date_value(name, value, zone, moment)
            query.last_updated.append(LastUpdatedCondition(prefix, search))
        elif name in ("_include", "_revinclude"):
            if modifier:  # :iterate (and :recurse, its R3 name)
                raise SearchError(f"'{safe_name(raw_name)}' is not supported")
            query.includes.append(_include(resource_type, name, value))
        elif name in PRESENTATION_PARAMS:
            # They change how resources are shown, never which: ignoring one cannot
            # widen a result. Strict handling still refuses what it does not honour.
            if strict and name != "_pretty":
                raise SearchError(f"'{safe_name(raw_name)}' is not supported")
            if name != "_pretty":
                query.ignored.append(safe_name(raw_name))
            continue
        else:
            param = resource_type.param(name)
            if param is None:
                # A filter the server does not understand is refused in every mode:
                # ignoring it would answer with more than was asked.
                raise SearchError(_not_understood(resource_type, raw_name))
            _reject_modifier(raw_name, modifier)
            try:
                # Kept relative in ``applied`` too: the links, and whom the ledger names.
                value = _relative(param, value, base)
                _param_condition(query, param, value, zone, moment)
            except SearchError as error:
                # Named as the client sent it: R4's name for one of ours (``authoredon``
                # for MedicationRequest's ``date``) is what the client knows.
                told = str(error)
                if name == param.name or not told.startswith(param.name):
                    raise
                raise SearchError(f"{safe_name(name)}{told[len(param.name) :]}") from None
        query.applied.append((raw_name, value))
    _shape(query, views, strict)
    return query


def _shape(query: SearchQuery, views: Sequence[tuple[str, str]], strict: bool) -> None:
    """``_summary`` and ``_elements``, once every parameter is known (their checks do not
    depend on the order they come in)."""
    try:
        asked = asked_view(query.resource_type.name, views, search=True, strict=strict)
    except ViewError as error:
        raise SearchError(str(error)) from None
    if asked.view.summary is Summary.TEXT and query.includes:
        # FHIR: _include and _revinclude cannot be mixed with _summary=text.
        raise SearchError("_summary=text cannot be used with _include or _revinclude")
    query.view = asked.view
    query.summary_count = asked.count_only
    query.applied.extend(asked.applied)
    query.ignored_elements = list(asked.ignored)


def _include(resource_type: ResourceType, name: str, value: str) -> Include:
    """``Source:param[:Target]``, where ``param`` is a reference parameter of Source."""
    parts = value.split(":")
    reverse = name == "_revinclude"
    source = RESOURCE_TYPES.get(parts[0]) if len(parts) in (2, 3) else None
    param = source.param(parts[1]) if source is not None else None
    if source is None or param is None or param.kind is not ParamKind.REFERENCE:
        raise SearchError(
            f"{name} takes Type:parameter[:Target] with a reference parameter of that type"
        )
    if not reverse and source.name != resource_type.name:
        raise SearchError(f"_include must start with {resource_type.name}")
    targets = param.targets
    if len(parts) == 3:
        targets = tuple(t for t in targets if t == parts[2])
    if reverse:
        targets = tuple(t for t in targets if t == resource_type.name)
    if len(targets) != 1:
        wanted = "point at " + resource_type.name if reverse else "name one target type"
        raise SearchError(f"{name}: {safe_name(value)} must {wanted}")
    return Include(source, param, targets[0], reverse)


def _not_understood(resource_type: ResourceType, raw_name: str) -> str:
    shown = safe_name(raw_name)
    if raw_name.startswith("_has"):
        return f"reverse chaining ('{shown}') is not supported"
    if "." in raw_name:
        return f"chained search ('{shown}') is not supported"
    return f"unknown search parameter '{shown}' for {resource_type.name}"


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
            allowed = ("_lastUpdated", "_id", *query.resource_type.sort_names)
            if key_name not in allowed:
                raise SearchError(
                    f"cannot sort {query.resource_type.name} by '{safe_name(key_name)}'; "
                    f"sortable: {', '.join(allowed)}"
                )
            # The vault sorts by the registry's name; the links repeat the one sent.
            canonical = query.resource_type.aliases.get(key_name, key_name)
            query.sort.append(SortKey(canonical, descending))
    elif (
        name == "_format"
        and mediatype.negotiate(mediatype.format_parameter(value)) is not mediatype.Answer.JSON
    ):
        # What the web layer's negotiation lets through (``web.fhir_format``), so a
        # search of a batch entry answers as the same search sent on its own.
        raise SearchError("only FHIR R4 JSON is supported (_format=json)")


def _non_negative(name: str, value: str) -> int:
    if not value.isdigit() or len(value) > 9:
        raise SearchError(f"{name} must be a non-negative integer")
    return int(value)


def date_value(
    name: str, value: str, zone: tzinfo, now: datetime
) -> tuple[dates.Prefix, dates.DateRange]:
    """The prefix and the range it compares with: for ``ap``, the value's range already
    widened by the approximation, so every later step compares with one fixed range.
    The one reading of a FHIR date search value: every date parameter, ``_lastUpdated``
    and the AuditEvent search's ``date`` take it."""
    try:
        prefix, text = dates.split_prefix(value)
        search = dates.parse(dates.from_query(text), zone)
    except dates.DateFormatError as error:
        raise SearchError(f"{name}: {error}") from None
    return prefix, dates.approximately(search, now) if prefix is dates.Prefix.AP else search


def _relative(param: SearchParam, value: str, base: str | None) -> str:
    """``value`` with each absolute reference at ``base`` made relative; an absolute
    reference at any other base refused. CareVault indexes only the references to its
    own records, relative as it stores them, so another server's ``Patient/x`` would
    have matched this server's (R4 search.html#reference: an absolute URL names a record
    by its location; only the server's own base names one here)."""
    if param.kind is not ParamKind.REFERENCE or ":" not in value:
        return value
    own = None if base is None else base.rstrip("/") + "/"
    parts = []
    for part in split_values(value):
        # Judged as unescaped (``http:\/\/`` is ``http://``); a part with a scheme is a
        # URL, and only this server's base names a record here.
        if ":" in part:
            if own is None or not part.startswith(own):
                raise SearchError(
                    f"{param.name}: an absolute reference names a record on another server; "
                    "this server holds references to its own records only (search by "
                    "Type/id, or by its URL at this server's base)"
                )
            part = part[len(own) :]
        parts.append(part.replace("\\", "\\\\").replace(",", "\\,"))
    return ",".join(parts)


def _param_condition(
    query: SearchQuery, param: SearchParam, value: str, zone: tzinfo, now: datetime
) -> None:
    if param.kind is ParamKind.DATE:
        if "," in value:
            raise SearchError(f"{param.name}: a date search takes one value (repeat the parameter)")
        prefix, search = date_value(param.name, value, zone, now)
        covers = dates.candidate_covers(prefix, search, zone)
        query.dates.append(
            DateCondition(
                param,
                prefix,
                search,
                None if covers is None else tuple(tuple(c) for c in covers),
                certain_tokens(prefix, search, zone),
            )
        )
        return
    parts = [part for part in split_values(value) if part]
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


def split_values(value: str) -> list[str]:
    """Split on commas not escaped with a backslash, unescaping as the spec says. The
    one reading of a search value's alternatives: a guard that judges values (the gate's
    refusal of sensitive codes) reads them with it, or it would judge another value than
    the one searched for (``8640600\\8`` is ``86406008``)."""
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
    term = token_term(param, value)
    return [] if term is None else [(term,)]


def token_term(param: SearchParam, value: str) -> str | None:
    """The term a token value searches for; None when nothing can match it (a code
    element searched under a code system other than its own)."""
    if param.telecom_system == "phone":
        return any_term(normalise.phone(value))
    if param.telecom_system == "email":
        return any_term(normalise.email(value))
    if "|" not in value:
        if param.name == "identifier":
            return any_term(normalise.identifier_any(value))
        return any_term(normalise.code(value))
    system, _, code = value.partition("|")
    if not system and not code:
        raise SearchError(f"{param.name} needs a code or a system")
    if param.implicit_system is not None:
        # A code element has no system of its own: its values are from one code system.
        if system and system != param.implicit_system:
            return None
        return any_term(normalise.code(code)) if code else system_only_term(system)
    if not code:
        return system_only_term(system)
    text = (
        normalise.identifier_value(system or None, code)
        if param.name == "identifier"
        else normalise.code(code)
    )
    return system_term(system or None, text)


def _reference_id(param: SearchParam, value: str, expected: str) -> str:
    """The id of ``Type/id`` or a bare id; any other form (a path, another server's URL
    without its scheme: ``//host/fhir/Patient/x``) is refused, never read by its last
    segments as this server's record."""
    target, slash, ident = value.rpartition("/")
    if slash and target != expected:
        raise SearchError(f"{param.name} must point at a {expected} (Type/id, or a bare id)")
    return _checked_id(param, ident if slash else value)


def _checked_id(param: SearchParam, ident: str) -> str:
    if not _ID.match(ident):
        raise SearchError(f"{param.name}: not a valid resource id")
    return ident
