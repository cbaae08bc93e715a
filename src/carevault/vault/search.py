"""Running a parsed FHIR search against clear columns and blind-index tokens.

Tokens narrow the candidates in SQL. A date condition is settled by tokens for every
resource that carries a token only a match can carry (fhir/date_certain.py); the
rest of its candidates — values in the buckets at the edges of the range — are
opened (at most ``candidate_limit``, else the search is refused as too costly) and
compared exactly, and counting and paging then happen in SQL. Date sorts open every
candidate. A search that names its patients reads those patients' tokens instead (a
few records) and applies the same token tests in Python, rather than sending the
hundreds of tokens that cover an open-ended range to the index (``_patient_rows``).

A role that may not see sensitive records (``keep``) is kept from them in SQL too: each
health record carries a blind marker, ordinary or sensitive, written beside its search
tokens (fhir/indexing.py). Only records without a marker of this version's rules —
written before it, until ``carevault reindex`` — are opened and checked with ``keep``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, func, not_, or_, select

from carevault.clock import to_micros
from carevault.db import read_transaction
from carevault.domain.categories import HEALTH_CATEGORIES
from carevault.fhir import dates, jsonio
from carevault.fhir.elements import values_at
from carevault.fhir.indexing import ORDINARY_TERM, SENSITIVE_TERM, SENSITIVITY
from carevault.fhir.query import (
    DateCondition,
    LastUpdatedCondition,
    SearchQuery,
    TermCondition,
)
from carevault.vault.opening import open_sealed
from carevault.vault.records import Head, Opened, Sealed, SearchTooCostly
from carevault.vault.store import Restriction, Vault
from carevault.vault.tables import resource_head, search_date, search_token, search_token_list
from carevault.vault.tokenlist import unpack

#: At most this many records of the type, for the patients a search names, are read with
#: their tokens to settle its dates (``_patient_rows``); beyond, the index settles them.
PATIENT_ROWS = 2000


def find(
    vault: Vault,
    query: SearchQuery,
    *,
    principal: str,
    purpose: str,
    restrict: Restriction,
    candidate_limit: int,
    keep: Callable[[Opened], bool] | None = None,
    on_open: Callable[[int], None] | None = None,
) -> tuple[list[Sealed | Opened], int]:
    """The requested page (sealed, or opened when filtering needed it) and the total.

    ``keep`` says whether an opened record may be shown (the gate uses it for sensitive
    records): for health records it is settled by their sensitivity markers in SQL, and
    only unmarked records are opened to ask it; for anything else every candidate is
    opened so the total counts only what is kept. ``on_open`` is told how many
    candidates are about to be opened (the gate charges them to the request's budget;
    it may refuse).
    """
    if query.after is not None and not query.pages_by_cursor:
        raise ValueError("a cursor pages an order by a record's clear head only")
    base = _conditions(vault, query)
    if restrict is not None:
        base.append(restrict)
    rows = _patient_rows(vault, query, base)
    covers = _date_conditions(vault, query) if rows is None else [_among(rows.candidates)]
    if keep is not None and query.resource_type.category in HEALTH_CATEGORIES:
        base.append(
            _releasable(
                vault,
                query,
                [*base, *covers],
                keep,
                principal=principal,
                purpose=purpose,
                candidate_limit=candidate_limit,
                on_open=on_open,
            )
        )
        keep = None
    conditions = [*base, *covers]
    clear = not query.resource_type.is_patient_data
    if (clear or not query.sorts_on_encrypted) and keep is None:
        if query.dates and not clear:
            settled = _settle_dates(
                vault,
                query,
                conditions,
                certain=None if rows is None else _among(rows.certain),
                principal=principal,
                purpose=purpose,
                candidate_limit=candidate_limit,
                on_open=on_open,
            )
            # The covers are implied: a record with a certain token of every condition
            # matches, and every match carries a token of each cover; the edges that
            # matched were candidates. Counting and paging without them send the
            # hundreds of tokens an open-ended range's cover lists once, not three times.
            conditions = [*base, settled]
        return _sql_page(vault, query, conditions)
    with read_transaction(vault.engine) as connection:
        row_ids = [
            int(row_id)
            for row_id in connection.execute(
                select(resource_head.c.row_id).where(*conditions).limit(candidate_limit + 1)
            ).scalars()
        ]
    if len(row_ids) > candidate_limit:
        raise SearchTooCostly(
            f"this search would open more than {candidate_limit} records; "
            "narrow it (for example by patient)"
        )
    if on_open is not None:
        on_open(len(row_ids))
    opened = open_sealed(vault, vault.locate_rows(row_ids), principal=principal, purpose=purpose)
    matching = [
        item for item in opened if _dates_match(vault, query, item) and (keep is None or keep(item))
    ]
    matching = _sorted(vault, query, matching)
    if query.summary_count:
        return [], len(matching)
    start = query.offset
    if query.after is not None:
        # In the order the cursor names: those at or before it come first.
        after = query.after
        start = query.offset = sum(
            1 for item in matching if not _follows(query, _place(item.head), after)
        )
    page: list[Sealed | Opened] = list(matching[start : start + query.count])
    query.following = _place(page[-1].head) if page else None
    return page, len(matching)


def _place(head: Head) -> tuple[int, int, str]:
    """What a cursor names of a record (``SearchQuery.after``); its first two are the
    default order, and sort as it does."""
    return head.last_updated_us, head.row_id, head.resource_id


def _cursor_order(query: SearchQuery) -> list[tuple[str, bool]]:
    """The keys of an order a cursor pages (``pages_by_cursor``), each with whether it
    descends: the sort's, then the default order's; a key again adds nothing."""
    keys = [*((key.name, key.descending) for key in query.sort)]
    keys += [("_lastUpdated", False), ("_row", False)]
    names = [name for name, _ in keys]
    return [key for index, key in enumerate(keys) if names.index(key[0]) == index]


def _value(name: str, place: tuple[int, int, str]) -> Any:
    return {"_lastUpdated": place[0], "_row": place[1], "_id": place[2]}[name]


def _follows(query: SearchQuery, place: tuple[int, int, str], after: tuple[int, int, str]) -> bool:
    """Whether the record at ``place`` comes strictly after ``after`` in the search's
    order (in memory, as ``_beyond`` says in SQL)."""
    for name, descending in _cursor_order(query):
        mine, theirs = _value(name, place), _value(name, after)
        if mine != theirs:
            return bool(mine < theirs if descending else mine > theirs)
    return False


def _releasable(
    vault: Vault,
    query: SearchQuery,
    conditions: list[ColumnElement[bool]],
    keep: Callable[[Opened], bool],
    *,
    principal: str,
    purpose: str,
    candidate_limit: int,
    on_open: Callable[[int], None] | None,
) -> ColumnElement[bool]:
    """A condition true exactly for the candidates ``keep`` would keep: those marked
    ordinary, and the unmarked ones (indexed before these rules) that ``keep`` keeps once
    opened. Records marked sensitive are never opened."""
    name = query.resource_type.name
    ordinary = vault.token(name, SENSITIVITY, ORDINARY_TERM)
    markers = [ordinary, vault.token(name, SENSITIVITY, SENSITIVE_TERM)]
    marked = exists().where(
        search_token.c.token.in_(markers), search_token.c.row_id == resource_head.c.row_id
    )
    with read_transaction(vault.engine) as connection:
        unmarked = [
            int(row_id)
            for row_id in connection.execute(
                select(resource_head.c.row_id)
                .where(*conditions, not_(marked))
                .limit(candidate_limit + 1)
            ).scalars()
        ]
    if len(unmarked) > candidate_limit:
        raise SearchTooCostly(
            f"this search would open more than {candidate_limit} records indexed before "
            "this version's sensitivity markers; narrow it, or run carevault reindex"
        )
    shown = _has_any([ordinary])
    if not unmarked:
        return shown
    if on_open is not None:
        on_open(len(unmarked))
    opened = open_sealed(vault, vault.locate_rows(unmarked), principal=principal, purpose=purpose)
    kept = [item.head.row_id for item in opened if item.body is not None and keep(item)]
    return or_(shown, resource_head.c.row_id.in_(kept)) if kept else shown


def _settle_dates(
    vault: Vault,
    query: SearchQuery,
    conditions: list[ColumnElement[bool]],
    *,
    principal: str,
    purpose: str,
    candidate_limit: int,
    on_open: Callable[[int], None] | None,
    certain: ColumnElement[bool] | None = None,
) -> ColumnElement[bool]:
    """A condition true exactly for the candidates whose dates match: those the tokens
    settle (``certain``, when the caller already knows them), and the edge candidates
    that match once opened."""
    rt = query.resource_type
    if certain is None:
        certain = and_(
            *(
                _has_any(vault.date_tokens(rt.name, c.param.name, sorted(c.certain)))
                if c.certain
                else false()
                for c in query.dates
            )
        )
    with read_transaction(vault.engine) as connection:
        edges = [
            int(row_id)
            for row_id in connection.execute(
                select(resource_head.c.row_id)
                .where(*conditions, not_(certain))
                .limit(candidate_limit + 1)
            ).scalars()
        ]
    if len(edges) > candidate_limit:
        raise SearchTooCostly(
            f"this search would open more than {candidate_limit} records at the edges of "
            "its date range; narrow it (for example by patient, or to whole days)"
        )
    if not edges:
        return certain
    if on_open is not None:
        on_open(len(edges))
    opened = open_sealed(vault, vault.locate_rows(edges), principal=principal, purpose=purpose)
    matching = [item.head.row_id for item in opened if _dates_match(vault, query, item)]
    if not matching:
        return certain
    return or_(certain, resource_head.c.row_id.in_(matching))


def _sql_page(
    vault: Vault, query: SearchQuery, conditions: list[ColumnElement[bool]]
) -> tuple[list[Sealed | Opened], int]:
    """The page, its records and the total, in one transaction. The page is read
    first: when it is not full and not empty (or is the first), it ends the matches and
    gives the total, and the count, a second statement, is needed only for a full or an
    empty later page (a search by identifier, the commonest, then costs one statement,
    not two). A page asked after a cursor (``query.after``) holds the matches after it,
    and counts those at or before it (``query.offset``, for its links): one statement
    more, and the page, not full, ends the matches whatever that count."""
    counting = select(func.count()).select_from(resource_head).where(*conditions)
    by_patient = bool(query.patients)
    with read_transaction(vault.engine) as connection:
        if query.summary_count or query.count == 0:
            return [], int(connection.execute(counting).scalar_one())
        statement = (
            select(resource_head.c.row_id)
            .where(*conditions)
            .order_by(*_sql_order(query, by_patient=by_patient))
            .limit(query.count)
        )
        if query.after is None:
            statement = statement.offset(query.offset)
        else:
            # After the cursor, not at a position: a record written or deleted before it
            # since moves no later one past the page.
            beyond = _beyond(query, query.after, by_patient=by_patient)
            statement = statement.where(beyond)
            query.offset = int(connection.execute(counting.where(not_(beyond))).scalar_one())
        row_ids = [int(row_id) for row_id in connection.execute(statement).scalars()]
        if len(row_ids) < query.count and (row_ids or query.offset == 0 or query.after is not None):
            total = query.offset + len(row_ids)
        else:
            total = int(connection.execute(counting).scalar_one())
        page: list[Sealed | Opened] = list(vault.locate_rows(row_ids, connection))
        query.following = _place(page[-1].head) if page else None
        return page, total


def _beyond(
    query: SearchQuery, after: tuple[int, int, str], *, by_patient: bool
) -> ColumnElement[bool]:
    """The records strictly after ``after`` in the search's order (``_cursor_order``):
    the default, ``(lu > a) OR (lu = a AND row_id > b)``, and a sort's keys before it
    likewise, each as ``_sql_order`` writes it, so that a search that names its patients
    keeps to ``ix_resource_head_patient`` (``+ 0``), and one that does not may start its
    walk of an index on its first key at the cursor."""
    clauses: list[ColumnElement[bool]] = []
    equal: list[ColumnElement[bool]] = []
    for name, descending in _cursor_order(query):
        column, value = _head_column(name, by_patient=by_patient), _value(name, after)
        clauses.append(and_(*equal, column < value if descending else column > value))
        equal.append(column == value)
    # The first term, implied by the rest, bounds the walk of an index on the first key.
    (name, descending), *_ = _cursor_order(query)
    first, value = _head_column(name, by_patient=by_patient), _value(name, after)
    return and_(first <= value if descending else first >= value, or_(*clauses))


def _head_column(name: str, *, by_patient: bool) -> Any:
    """A key of an order by what a record's head holds in the clear (``_id``,
    ``_lastUpdated``, and the row, last of the default order), as ``_sql_order`` sorts
    by it."""
    if name == "_id":
        column: Any = resource_head.c.resource_id
        return column.concat("") if by_patient else column
    column = resource_head.c.last_updated_us if name == "_lastUpdated" else resource_head.c.row_id
    return column + 0 if by_patient else column


def _sql_order(query: SearchQuery, *, by_patient: bool = False) -> list[Any]:
    """The page's order. When the search names its patients, the few rows of those
    patients are found through ``ix_resource_head_patient`` and sorted; the order's
    columns are then written as expressions (``+ 0``) so that SQLite, which keeps no
    statistics unless ANALYZE has run, does not walk ``ix_resource_head_updated`` over
    every record of the type to avoid that small sort (measured: 6.8 ms a page at 2,000
    patients, growing with the group, against 0.02 ms)."""
    order: list[Any] = []
    for key in query.sort:
        if key.name in ("_id", "_lastUpdated"):
            column = _head_column(key.name, by_patient=by_patient)
            order.append(column.desc() if key.descending else column.asc())
            continue
        # A clear date (records that are not patient data): its earliest start.
        earliest = (
            select(func.min(search_date.c.low_us))
            .where(search_date.c.row_id == resource_head.c.row_id)
            .where(search_date.c.param == key.name)
            .scalar_subquery()
        )
        # Without the value: last, either way.
        order.append(
            earliest.desc().nulls_last() if key.descending else earliest.asc().nulls_last()
        )
    return [
        *order,
        *(_head_column(name, by_patient=by_patient) for name in ("_lastUpdated", "_row")),
    ]


def _conditions(vault: Vault, query: SearchQuery) -> list[ColumnElement[bool]]:
    rt = query.resource_type
    conditions: list[ColumnElement[bool]] = [
        resource_head.c.resource_type == rt.name,
        resource_head.c.deleted.is_(False),
    ]
    for ids in query.ids:
        conditions.append(resource_head.c.resource_id.in_(ids))
    for patients in query.patients:
        pseudonyms = list(vault.patient_pseudonyms(patients.patient_ids).values())
        conditions.append(
            resource_head.c.patient_pseudonym.in_(pseudonyms) if pseudonyms else false()
        )
    for updated in query.last_updated:
        conditions.append(_last_updated(updated))
    if query.as_of_us is not None:
        conditions.append(resource_head.c.last_updated_us <= query.as_of_us)
    for term_condition in query.terms:
        conditions.append(_terms(vault, rt.name, term_condition))
    return conditions


def _date_conditions(vault: Vault, query: SearchQuery) -> list[ColumnElement[bool]]:
    """The date conditions in SQL: clear ranges, or a token of each cover."""
    rt = query.resource_type
    conditions: list[ColumnElement[bool]] = []
    for date_condition in query.dates:
        if not rt.is_patient_data:
            conditions.append(_clear_date(date_condition))
            continue
        for cover in date_condition.covers or ():
            conditions.append(
                _has_any(vault.date_tokens(rt.name, date_condition.param.name, cover))
            )
    return conditions


@dataclass(frozen=True)
class _PatientRows:
    """The rows of the named patients that the date tokens allow (``candidates``) and
    those the tokens settle as matches (``certain``, a subset)."""

    candidates: list[int]
    certain: list[int]


def _patient_rows(
    vault: Vault, query: SearchQuery, conditions: list[ColumnElement[bool]]
) -> _PatientRows | None:
    """Date conditions of a search that names its patients, settled from those patients'
    own tokens; ``None`` where the search names none (or their records are too many).

    An open-ended range is covered by hundreds of tokens (each day to the end of the
    month, each month to the end of the year, each year to ``MAX_YEAR``), and probing
    the index for every one of them, in every statement, cost more than the rest of the
    search. A patient's records of one type are few: their token lists
    (``search_token_list``) are read in one statement and compared here with the
    cover's, the same test the SQL would make, so the result is the same.
    """
    rt = query.resource_type
    if not (query.patients and query.dates and rt.is_patient_data):
        return None
    with read_transaction(vault.engine) as connection:
        row_ids = list(
            connection.execute(
                select(resource_head.c.row_id).where(*conditions).limit(PATIENT_ROWS + 1)
            ).scalars()
        )
        if len(row_ids) > PATIENT_ROWS:
            return None
        held: dict[int, set[bytes]] = {int(row_id): set() for row_id in row_ids}
        if held:
            lists = connection.execute(
                select(search_token_list.c.row_id, search_token_list.c.tokens).where(
                    search_token_list.c.row_id.in_(
                        select(resource_head.c.row_id).where(*conditions)
                    )
                )
            )
            for row_id, packed in lists:
                found = held.get(int(row_id))
                if found is not None:
                    found.update(unpack(packed))
    covers: list[frozenset[bytes]] = []
    certain: list[frozenset[bytes]] = []
    for condition in query.dates:
        name = condition.param.name
        covers += [
            frozenset(vault.date_tokens(rt.name, name, cover)) for cover in condition.covers or ()
        ]
        certain.append(frozenset(vault.date_tokens(rt.name, name, condition.certain)))
    candidates = [
        row_id
        for row_id, tokens in held.items()
        if all(not tokens.isdisjoint(cover) for cover in covers)
    ]
    settled = [
        row_id
        for row_id in candidates
        if all(not held[row_id].isdisjoint(sure) for sure in certain)
    ]
    return _PatientRows(candidates, settled)


def _among(row_ids: Sequence[int]) -> ColumnElement[bool]:
    return resource_head.c.row_id.in_(list(row_ids)) if row_ids else false()


def _clear_date(condition: DateCondition) -> ColumnElement[bool]:
    """Some value of the parameter matches: FHIR's range comparison, in SQL."""
    assert condition.search.low is not None and condition.search.high is not None  # noqa: S101
    low, high = to_micros(condition.search.low), to_micros(condition.search.high)
    value_low, value_high = search_date.c.low_us, search_date.c.high_us
    within = and_(value_low >= low, value_high <= high)
    above = or_(value_high.is_(None), value_high > high)
    below = or_(value_low.is_(None), value_low < low)
    matches = {
        dates.Prefix.EQ: within,
        dates.Prefix.NE: or_(value_low.is_(None), value_high.is_(None), not_(within)),
        dates.Prefix.GT: above,
        dates.Prefix.LT: below,
        dates.Prefix.GE: or_(above, within),
        dates.Prefix.LE: or_(below, within),
        dates.Prefix.SA: value_low >= high,
        dates.Prefix.EB: value_high <= low,
        # Overlaps the range (widened when the search was parsed).
        dates.Prefix.AP: and_(
            or_(value_high.is_(None), value_high > low), or_(value_low.is_(None), value_low < high)
        ),
    }[condition.prefix]
    return resource_head.c.row_id.in_(
        select(search_date.c.row_id).where(search_date.c.param == condition.param.name, matches)
    )


def _has_any(tokens: Sequence[bytes]) -> ColumnElement[bool]:
    return resource_head.c.row_id.in_(
        select(search_token.c.row_id).where(search_token.c.token.in_(list(tokens)))
    )


def _terms(vault: Vault, type_name: str, condition: TermCondition) -> ColumnElement[bool]:
    """OR over the alternatives; an alternative of several terms needs all of them."""
    param = condition.param

    def token(term: str) -> bytes:
        return vault.token(type_name, param.name, term, clear=param.clear)

    singles = [alternative[0] for alternative in condition.alternatives if len(alternative) == 1]
    clauses: list[ColumnElement[bool]] = []
    if singles:
        clauses.append(_has_any([token(term) for term in singles]))
    for alternative in condition.alternatives:
        if len(alternative) > 1:
            clauses.append(and_(*(_has_any([token(term)]) for term in alternative)))
    return or_(*clauses) if clauses else false()


def _last_updated(condition: LastUpdatedCondition) -> ColumnElement[bool]:
    assert condition.search.low is not None and condition.search.high is not None  # noqa: S101
    low, high = to_micros(condition.search.low), to_micros(condition.search.high)
    column = resource_head.c.last_updated_us
    prefix = condition.prefix
    within = and_(column >= low, column < high)
    return {
        dates.Prefix.EQ: within,
        dates.Prefix.NE: not_(within),
        dates.Prefix.GT: column >= high,
        dates.Prefix.SA: column >= high,
        dates.Prefix.LT: column < low,
        dates.Prefix.EB: column < low,
        dates.Prefix.GE: column >= low,
        dates.Prefix.LE: column < high,
        dates.Prefix.AP: within,  # an instant in the widened range
    }[prefix]


def _resource_ranges(
    vault: Vault, resource: dict[str, Any], paths: tuple[str, ...]
) -> list[dates.DateRange]:
    found: list[dates.DateRange] = []
    for path in paths:
        for value in values_at(resource, path):
            parsed = dates.value_range(value, vault.zone)
            if parsed is not None:
                found.append(parsed)
    return found


def _dates_match(vault: Vault, query: SearchQuery, item: Opened) -> bool:
    if not query.dates or item.body is None:
        return item.body is not None
    resource = jsonio.load(item.body)
    for condition in query.dates:
        ranges = _resource_ranges(vault, resource, condition.param.paths)
        if not any(dates.matches(condition.prefix, condition.search, r) for r in ranges):
            return False
    return True


def _sorted(vault: Vault, query: SearchQuery, items: list[Opened]) -> list[Opened]:
    """``items`` in the search's order, ties (and a search without ``_sort``) in the
    default order, as SQL orders them (``_sql_order``)."""
    items = sorted(items, key=lambda item: _place(item.head))
    if not query.sort:
        return items
    keyed: list[tuple[list[Any], Opened]] = []
    for item in items:
        resource = jsonio.load(item.body or b"{}")
        keyed.append((_sort_key(vault, query, item, resource), item))
    # Sort by the last key first: Python's sort is stable, so earlier keys win.
    for index in reversed(range(len(query.sort))):
        descending = query.sort[index].descending
        present = [pair for pair in keyed if pair[0][index] is not None]
        missing = [pair for pair in keyed if pair[0][index] is None]
        present.sort(key=lambda pair: pair[0][index], reverse=descending)
        keyed = present + missing  # resources without the value come last either way
    return [item for _, item in keyed]


def _sort_key(
    vault: Vault, query: SearchQuery, item: Opened, resource: dict[str, Any]
) -> list[Any]:
    key: list[Any] = []
    for sort in query.sort:
        if sort.name == "_lastUpdated":
            key.append(item.head.last_updated_us)
        elif sort.name == "_id":
            key.append(item.head.resource_id)
        else:
            param = query.resource_type.param(sort.name)
            ranges = _resource_ranges(vault, resource, param.paths if param else ())
            lows: list[datetime] = [r.low for r in ranges if r.low is not None]
            key.append(min(lows) if lows else None)
    return key


def marked_ordinary(vault: Vault, heads: Sequence[Head]) -> set[int]:
    """The row ids of ``heads`` that carry this version's ordinary sensitivity marker:
    health records known, without opening them, to hold nothing sensitive. A record
    marked sensitive, one indexed before these rules and one of a type that carries no
    marker are left out, so whoever asks counts them as possibly sensitive (fail closed)."""
    wanted: dict[str, list[int]] = {}
    for head in heads:
        wanted.setdefault(head.resource_type, []).append(head.row_id)
    found: set[int] = set()
    with read_transaction(vault.engine) as connection:
        for type_name, rows in sorted(wanted.items()):
            ordinary = vault.token(type_name, SENSITIVITY, ORDINARY_TERM)
            for start in range(0, len(rows), 1000):
                found.update(
                    int(row_id)
                    for row_id in connection.execute(
                        select(search_token.c.row_id).where(
                            search_token.c.token == ordinary,
                            search_token.c.row_id.in_(rows[start : start + 1000]),
                        )
                    ).scalars()
                )
    return found
