"""Type- and system-level history through the gate (``GET /fhir/[type]/_history``,
``GET /fhir/_history``): versions of many records, read as a search reads.

Each type is reached as a search of it is: the token's search scope, containment, and
the access policy's SQL restriction over the records' current heads (so a page never
holds a record the caller could not find by searching). Each version is then judged
as ``Gate.history`` judges it (``_decide_version``): under the stricter of the facts it
had when written and those of the record now, so a record moved to another patient or
clinic, or deleted, never opens its past to anyone who could not read it then and now.
Only the page is opened (charged to the request's decryption budget); the patients it
names pass the release budget and get their audit entries (one per patient, naming the
versions) before anything is returned, through the same hooks a search page uses.

A record whose current version is withheld from the caller as a whole (a Condition that
became an HIV diagnosis, for a pharmacist) is no candidate: its versions are neither
listed nor counted, as a search would not find it and its own history answers 404. It is
settled by the records' sensitivity markers in SQL, as a search settles it; only records
indexed before this version's markers are opened to ask (until ``carevault reindex``). A
deleted record is judged on the version its deletion ended, which is opened to ask (a
deletion drops the markers): at most the gate's candidate limit of them, else the
history is refused as too costly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import ColumnElement, and_, exists, not_, or_, select

from carevault.access.scopes import Interaction
from carevault.db import read_transaction
from carevault.domain.policy import Decision
from carevault.fhir.indexing import ORDINARY_TERM, SENSITIVE_TERM, SENSITIVITY
from carevault.fhir.registry import RESOURCE_TYPES, ResourceType
from carevault.gate.core import AccessDenied, Caller, Gate
from carevault.ledger.events import Tag
from carevault.vault.records import Head, Opened, Sealed, SearchTooCostly, VersionKey
from carevault.vault.tables import resource_head, search_token


def versions(
    gate: Gate,
    caller: Caller,
    rt: ResourceType | None,
    *,
    since_us: int | None,
    start: VersionKey | None,
    count: int,
) -> tuple[list[Opened], VersionKey | None]:
    """Up to ``count`` versions of ``rt``'s records (None: of every type the caller may
    search) the caller may read, newest first, from ``start`` on (None: the newest) among
    the candidates (the versions of records the caller reaches); and where the next page
    starts (the next version the caller may read), None if none follows. A page starts
    at a version, never at a position among candidates: the next page goes on after the
    last version given whatever was written, moved out of reach or deleted since (a
    position skipped as many readable versions as had left reach before it, and told,
    replayed later, how many versions had been written since, readable or not).

    Candidates the caller may not read (their older facts deny them; a sensitive record
    withheld whole) are passed over, never counted: a page is short only at the end, and
    a next link means a readable version follows. Paging one by one through a page cut
    among candidates told how many versions the caller could not read, and when they
    were written. Passing over them is bounded by the gate's candidate limit."""
    with gate._attempt(caller, Tag.FHIR_HISTORY, rt.name if rt else None) as attempt:
        attempt.detail["level"] = "type" if rt else "system"
        reach = _reach(gate, caller, rt, since_us)
        if reach is None:
            gate._record_shown(attempt, [])
            return [], None
        readable, following = _readable(gate, caller, reach, since_us, start, count)
        opened = gate._open(caller, [item for item, _ in readable])
        page = gate._show_decided(
            attempt,
            [(item, decision) for item, (_, decision) in zip(opened, readable, strict=True)],
            versioned=True,
        )
        return page, following


def _readable(
    gate: Gate,
    caller: Caller,
    reach: ColumnElement[bool],
    since_us: int | None,
    start: VersionKey | None,
    count: int,
) -> tuple[list[tuple[Sealed, Decision]], VersionKey | None]:
    """The first ``count`` readable versions from ``start`` on, and the key of the
    readable one after them (None: there is none)."""
    readable: list[tuple[Sealed, Decision]] = []
    position = 0
    chunk = count + 1
    while True:
        found = gate.vault.locate_versions(reach, since_us, position, chunk, start)
        for judged in _decide(gate, caller, found):
            if judged is None:
                continue
            if len(readable) == count:
                return readable, VersionKey.of(judged[0].head)
            readable.append(judged)
        if len(found) < chunk:
            return readable, None
        position += len(found)
        if position > gate.candidate_limit:
            raise SearchTooCostly("history: too many versions to pass over; narrow with _since")
        chunk = min(chunk * 2, 1000)


def _reach(
    gate: Gate, caller: Caller, rt: ResourceType | None, since_us: int | None
) -> ColumnElement[bool] | None:
    """The SQL over resource_head that keeps the records a search of each type would;
    None when no type is reachable. A type-level request the caller may not search is
    refused as its search would be; a system-level one leaves such types out."""
    if rt is not None:
        return _type_reach(gate, caller, rt, since_us)
    reaches: list[ColumnElement[bool]] = []
    for each in RESOURCE_TYPES.values():
        try:
            reaches.append(_type_reach(gate, caller, each, since_us))
        except AccessDenied:
            continue
    return or_(*reaches) if reaches else None


def _type_reach(
    gate: Gate, caller: Caller, rt: ResourceType, since_us: int | None
) -> ColumnElement[bool]:
    gate._scope(caller, rt, Interaction.SEARCH)
    gate._contain_search(rt)
    restrict, keep = gate._reach(caller, rt)
    is_type = resource_head.c.resource_type == rt.name
    reach = is_type if restrict is None else and_(is_type, restrict)
    if keep is None:
        return reach
    return and_(reach, _shown_whole(gate, caller, rt, reach, keep, since_us))


def _shown_whole(
    gate: Gate,
    caller: Caller,
    rt: ResourceType,
    reach: ColumnElement[bool],
    keep: Callable[[Opened], bool],
    since_us: int | None,
) -> ColumnElement[bool]:
    """A condition true for the records of ``reach`` whose current version the caller is
    not withheld as a whole: those marked ordinary, the unmarked ones ``keep`` keeps once
    opened, and the deleted ones whose last version before the deletion ``keep`` keeps
    (as ``Gate.history`` judges a deleted record: a deleted HIV diagnosis is no more
    listed to a pharmacist than a live one; each version kept is then judged on its own).
    Records marked sensitive are never opened. Deleted records whose deletion came
    before ``since_us`` have no version to list, and are not opened."""
    ordinary = gate.vault.token(rt.name, SENSITIVITY, ORDINARY_TERM)
    markers = [ordinary, gate.vault.token(rt.name, SENSITIVITY, SENSITIVE_TERM)]

    def marked(tokens: list[bytes]) -> ColumnElement[bool]:
        return exists().where(
            search_token.c.token.in_(tokens), search_token.c.row_id == resource_head.c.row_id
        )

    with read_transaction(gate.vault.engine) as connection:
        unmarked = [
            int(row_id)
            for row_id in connection.execute(
                select(resource_head.c.row_id)
                .where(reach, resource_head.c.deleted.is_(False), not_(marked(markers)))
                .limit(gate.candidate_limit + 1)
            ).scalars()
        ]
    if len(unmarked) > gate.candidate_limit:
        raise SearchTooCostly(
            f"history: more than {gate.candidate_limit} records of {rt.name} were indexed "
            "before this version's sensitivity markers; run carevault reindex"
        )
    deleted = reach
    if since_us is not None:
        deleted = and_(reach, resource_head.c.last_updated_us >= since_us)
    ended = gate.vault.locate_all_ended(deleted, gate.candidate_limit + 1)
    if len(ended) > gate.candidate_limit:
        raise SearchTooCostly(
            f"history: more than {gate.candidate_limit} deleted records of {rt.name} to "
            "judge on what they held; narrow with _since"
        )
    opened = gate._open(caller, [*gate.vault.locate_rows(unmarked), *ended])
    kept = [item.head.row_id for item in opened if item.body is not None and keep(item)]
    shown = marked([ordinary])
    return or_(shown, resource_head.c.row_id.in_(kept)) if kept else shown


def _decide(
    gate: Gate, caller: Caller, found: Sequence[tuple[Head, Sealed]]
) -> list[tuple[Sealed, Decision] | None]:
    """Each version judged as ``Gate.history`` judges it; None where it is refused."""
    if gate.access is not None and caller.actor is not None:
        gate.access.registrations.prefetch(
            [current.patient_pseudonym for current, _ in found if current.patient_pseudonym]
        )
    now: dict[tuple[str, str | None, str | None], Decision | None] = {}
    then: dict[tuple[str, str | None, str | None, str | None, str | None], Decision | None] = {}
    decided: list[tuple[Sealed, Decision] | None] = []
    for current, item in found:
        rt = RESOURCE_TYPES[current.resource_type]
        now_key = (rt.name, current.patient_pseudonym, current.clinic_id)
        if now_key not in now:
            try:
                now[now_key] = gate._decide_read(caller, rt, current)
            except AccessDenied:
                now[now_key] = None
        decision_now = now[now_key]
        if decision_now is None:
            decided.append(None)
            continue
        key = (*now_key, item.head.patient_pseudonym, item.head.clinic_id)
        if key not in then:
            try:
                then[key] = gate._decide_version(caller, rt, item.head, current, decision_now)
            except AccessDenied:
                then[key] = None
        decision = then[key]
        decided.append(None if decision is None else (item, decision))
    return decided
