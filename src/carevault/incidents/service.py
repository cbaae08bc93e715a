"""Incidents: declared, amended, listed, and each one's timeline.

Every declaration and amendment is an audit-ledger entry appended in the same
transaction as the change (fail closed: no entry, no change), followed by a signed
checkpoint, so the incident's own history is evidence like the accesses it is about.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, NoReturn

import orjson
from sqlalchemy import Connection, Engine, insert, select, update

from carevault.containment.state import Containment, ContainmentStore
from carevault.db import ROW_ID_MAX, read_transaction, write_transaction
from carevault.incidents import runs
from carevault.incidents.containment import own_actions
from carevault.incidents.model import (
    Amendment,
    Compromised,
    Incident,
    IncidentError,
    Status,
    check_window,
    instant,
)
from carevault.incidents.naming import Naming, names
from carevault.incidents.registry import Registry
from carevault.incidents.tables import incident, incident_event, incident_scope_run
from carevault.incidents.words import Words
from carevault.keys.service import KeyService
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.service import Ledger
from carevault.ledger.store import LedgerEntry
from carevault.ledger.trail import AuditUnavailable


class StepUpRequired(IncidentError):
    """An amendment that narrows an incident came without a privacy officer's fresh code."""


#: Confirms a privacy officer's fresh TOTP code for the action it is told, or raises;
#: returns the username whose code it was where that is not the asker's own (a CLI
#: operator names the officer), None where it is.
StepUp = Callable[[str], str | None]


class IncidentNotFound(IncidentError):
    """No incident with that id."""


#: How far ahead of the clock a window may open (``_not_in_future``).
FUTURE_GRACE_US = 5 * 60 * 1_000_000


@dataclass(frozen=True)
class Actor:
    """Who acts on an incident: a privacy officer's principal, or the CLI operator."""

    principal: str
    source_address: str | None = None


#: The ledger's reasons for a declaration and an amendment: the officer's words (a title,
#: a note) are sealed in the incident's row and the entry's ``detail`` (``words``).
DECLARED_REASON = "incident declared (its title sealed in the incident)"
AMENDED_REASON = "incident amended (a new title or note sealed in the detail)"


def _incident(row: Any, words: Words) -> Incident:
    incident_id = int(row.incident_id)
    return Incident(
        incident_id=incident_id,
        title=words.open(incident_id, "title", row.title),
        status=Status(row.status),
        declared_us=int(row.declared_us),
        declared_by=row.declared_by,
        since_us=int(row.since_us),
        until_us=None if row.until_us is None else int(row.until_us),
        compromised=Compromised.loads(row.compromised),
        alert_id=row.alert_id,
    )


class Incidents:
    def __init__(
        self,
        engine: Engine,
        ledger: Ledger,
        containment: ContainmentStore,
        now_us: Callable[[], int],
        registry: Registry,
        keys: KeyService | None,
    ) -> None:
        """``keys`` seals the officers' words (``words.Words``); None only with encryption
        off, where they are kept as typed."""
        self.engine = engine
        self.words = Words(keys)
        self.ledger = ledger
        self.containment = containment
        self.now_us = now_us
        self.registry = registry
        self.naming = Naming(registry)

    # --- the ledger -----------------------------------------------------------------------

    def _record(
        self,
        connection: Connection,
        tag: Tag,
        actor: Actor,
        reason: str,
        detail: dict[str, Any],
        outcome: Outcome = Outcome.SUCCESS,
    ) -> int:
        """Append the entry inside ``connection``'s transaction; its ledger position."""
        event = AuditEvent(
            tag=tag,
            outcome=outcome,
            at_us=self.now_us(),
            principal=actor.principal,
            source_address=actor.source_address,
            reason=reason,
            detail=detail,
        )
        entry = LedgerEntry(event.at_us, event.canonical(), None, event.principal)
        try:
            first, _ = self.ledger.store.append(connection, [entry])
        except Exception as error:
            raise AuditUnavailable("the audit ledger could not be written") from error
        return first

    def _event(
        self,
        connection: Connection,
        incident_id: int,
        kind: str,
        actor: Actor,
        detail: dict[str, Any],
        ledger_seq: int | None,
    ) -> None:
        connection.execute(
            insert(incident_event).values(
                incident_id=incident_id,
                at_us=self.now_us(),
                kind=kind,
                actor=actor.principal,
                detail=json.dumps(detail, sort_keys=True, separators=(",", ":")),
                ledger_seq=ledger_seq,
            )
        )

    # --- commands -------------------------------------------------------------------------

    def declare(
        self,
        actor: Actor,
        title: str,
        compromised: Compromised,
        since_us: int,
        until_us: int | None,
        alert_id: str | None = None,
    ) -> Incident:
        check_window(since_us, until_us)
        self._not_in_future(since_us)
        if compromised.is_empty():
            raise IncidentError("say what is believed compromised (an account, client, ...)")
        compromised = self.naming.known(compromised)
        now = self.now_us()
        with write_transaction(self.engine) as connection:
            incident_id = connection.execute(
                # The words are sealed bound to the incident's id, known once inserted.
                insert(incident).values(
                    title="",
                    status=Status.OPEN.value,
                    declared_us=now,
                    declared_by=actor.principal,
                    since_us=since_us,
                    until_us=until_us,
                    compromised=compromised.dumps(),
                    alert_id=alert_id,
                    updated_us=now,
                )
            ).inserted_primary_key
            assert incident_id is not None  # noqa: S101 - an insert returns its key
            connection.execute(
                update(incident)
                .where(incident.c.incident_id == incident_id[0])
                .values(title=self.words.seal(int(incident_id[0]), "title", title))
            )
            declared = self._get(connection, int(incident_id[0]))
            detail = {"incident": declared.incident_id, **_window(declared)}
            detail["compromised"] = compromised.as_json()
            if alert_id:
                detail["alert"] = alert_id
            seq = self._record(connection, Tag.INCIDENT_DECLARED, actor, DECLARED_REASON, detail)
            self._event(connection, declared.incident_id, "declared", actor, detail, seq)
        self.ledger.checkpoints.make(f"incident {declared.incident_id} declared")
        return declared

    def _not_in_future(self, since_us: int) -> None:
        """A window that opens in the future matches no entry, and its empty scope reads
        as "no patient affected": a typo of the year, not a case (integrator round 53).
        A few minutes' grace for a clock or an officer rounding "now" up."""
        if since_us > self.now_us() + FUTURE_GRACE_US:
            raise IncidentError("since: in the future; a window starts when the compromise did")

    def _names(self, found: Incident, principal: str) -> bool:
        """Whether ``found`` names ``principal`` as compromised (an account, or a session
        issued to it), or another account of the same person (one naming the same
        practitioner: adversary round 56, a doctor's officer login would narrow the
        incident about their physician login)."""
        # A session named is its holder named (adversary round 58: an officer closed the
        # incident about their own stolen console session).
        accounts = (*found.compromised.accounts, *self.registry.holders(found.compromised.sessions))
        return names(accounts, principal) or names(self.registry.same_people(accounts), principal)

    def _refuse_named(self, actor: Actor, incident_id: int) -> NoReturn:
        """Refuse (recorded) narrowing or closing an incident to an officer it names as
        compromised, as an alert is not dismissed by the officer it is about
        (``AlertDesk._not_about_self``): a colleague does it (adversary round 41: the
        officer an incident named closed it with their own code)."""
        with write_transaction(self.engine) as connection:
            self._record(
                connection,
                Tag.INCIDENT_AMEND_REFUSED,
                actor,
                f"narrow or close incident {incident_id}: the incident names its asker",
                {"incident": incident_id},
                Outcome.DENIED,
            )
        raise IncidentError(
            "an officer the incident names as compromised does not narrow or close it; "
            "ask another privacy officer"
        )

    def amend(
        self,
        actor: Actor,
        incident_id: int,
        amendment: Amendment,
        *,
        step_up: StepUp | None = None,
    ) -> Incident:
        """Apply ``amendment``. One that narrows the incident (``Amendment.narrows``)
        first asks ``step_up`` to confirm a privacy officer's fresh code for it (it raises
        if it cannot); without one it is refused (``StepUpRequired``), whichever door it
        came through."""
        current = self.get(incident_id)
        if amendment.since_us is not None:
            self._not_in_future(amendment.since_us)
        amendment = replace(amendment, adds=self.naming.known(amendment.adds, current.compromised))
        narrowing = amendment.narrows(current)
        if narrowing and self._names(current, actor.principal):
            self._refuse_named(actor, incident_id)
        if narrowing:
            action = f"narrow or close incident {incident_id}"
            try:
                if step_up is None:
                    raise StepUpRequired(
                        "narrowing an incident's window or closing it needs a privacy "
                        "officer's fresh TOTP code"
                    )
                # Before the write transaction: the code is claimed in a transaction of
                # its own.
                confirmed = step_up(action)
            except Exception:
                # Recorded in the incident's own terms, whichever door it came through.
                with write_transaction(self.engine) as connection:
                    self._record(
                        connection,
                        Tag.INCIDENT_AMEND_REFUSED,
                        actor,
                        f"{action}: no fresh code confirmed",
                        {"incident": incident_id},
                        Outcome.DENIED,
                    )
                raise
            if confirmed is not None and self._names(current, confirmed):
                self._refuse_named(actor, incident_id)
        with write_transaction(self.engine) as connection:
            before = self._get(connection, incident_id)
            if not narrowing and amendment.narrows(before):
                # Another amendment moved the window since: this one narrows it now.
                raise IncidentError("the incident changed while it was amended; amend it again")
            after = amendment.apply(before)
            changes = _changes(before, after)
            if amendment.note:
                changes["note"] = amendment.note
            if not changes:
                raise IncidentError("the amendment changes nothing")
            # The ledger entry and the timeline keep the words sealed (``timeline`` opens them).
            for field in ("title", "note"):
                if field in changes:
                    changes[field] = self.words.seal(incident_id, field, changes[field])
            connection.execute(
                update(incident)
                .where(incident.c.incident_id == incident_id)
                .values(
                    # An unchanged title is sealed afresh: a row stored before records_0031
                    # holds it as typed until its next amendment.
                    title=changes["title"]
                    if "title" in changes
                    else self.words.seal(incident_id, "title", after.title),
                    status=after.status.value,
                    since_us=after.since_us,
                    until_us=after.until_us,
                    compromised=after.compromised.dumps(),
                    updated_us=self.now_us(),
                )
            )
            detail = {"incident": incident_id, "changes": changes}
            seq = self._record(connection, Tag.INCIDENT_AMENDED, actor, AMENDED_REASON, detail)
            self._event(connection, incident_id, "amended", actor, detail, seq)
        self.ledger.checkpoints.make(f"incident {incident_id} amended")
        return after

    # --- reads ----------------------------------------------------------------------------

    def _get(self, connection: Connection, incident_id: int) -> Incident:
        if not 0 < incident_id <= ROW_ID_MAX:
            # No row has it, and one past 64 bits overflowed in the driver: the CLI's
            # integer argument reaches here unchecked (the web's path ids are RowId).
            raise IncidentNotFound(f"no incident {incident_id}")
        row = connection.execute(
            select(incident).where(incident.c.incident_id == incident_id)
        ).first()
        if row is None:
            raise IncidentNotFound(f"no incident {incident_id}")
        return _incident(row, self.words)

    def get(self, incident_id: int) -> Incident:
        with read_transaction(self.engine) as connection:
            return self._get(connection, incident_id)

    def all(self, status: Status | None = None) -> list[Incident]:
        query = select(incident).order_by(incident.c.incident_id.desc())
        if status is not None:
            query = query.where(incident.c.status == status.value)
        with read_transaction(self.engine) as connection:
            return [_incident(row, self.words) for row in connection.execute(query).all()]

    def _opened(self, incident_id: int, kind: str, detail: dict[str, Any]) -> dict[str, Any]:
        """An amendment's detail with its title and note opened (sealed since round 67)."""
        changes = detail.get("changes") if kind == "amended" else None
        if isinstance(changes, dict):
            for field in ("title", "note"):
                if isinstance(changes.get(field), str):
                    changes[field] = self.words.open(incident_id, field, changes[field])
        return detail

    def names_in_containment(self, action: Containment, principal: str) -> bool:
        """Whether an incident not closed that ``action`` contains (``own_actions``)
        names ``principal`` as compromised (``_names``): that officer does not release
        it (``ContainmentService.release``)."""
        return any(
            own_actions(found, [action]) and self._names(found, principal)
            for found in self.all()
            if found.status is not Status.CLOSED
        )

    def containment_of(self, found: Incident) -> list[Containment]:
        """The containment actions that contain ``found`` (``containment.own_actions``):
        never another incident's, oldest first."""
        return own_actions(found, self.containment.history(limit=1000))

    def timeline(self, incident_id: int) -> list[dict[str, Any]]:
        """Declaration, amendments, scope runs and the incident's own containment actions
        (``containment_of``) taken since the window opened, in time order."""
        with read_transaction(self.engine) as connection:
            found = self._get(connection, incident_id)
            rows = connection.execute(
                select(incident_event)
                .where(incident_event.c.incident_id == incident_id)
                .order_by(incident_event.c.event_id)
            ).all()
        items: list[tuple[int, dict[str, Any]]] = [
            (
                int(row.at_us),
                {
                    "at": instant(int(row.at_us)),
                    "kind": row.kind,
                    "actor": row.actor,
                    "detail": self._opened(incident_id, row.kind, json.loads(row.detail)),
                    "ledger_position": row.ledger_seq,
                },
            )
            for row in rows
        ]
        for action in self.containment_of(found):
            for at_us, kind, by in (
                (action.started_us, "containment-started", action.started_by),
                (action.released_us, "containment-released", action.released_by),
            ):
                if at_us is not None and at_us >= found.since_us:
                    detail = {
                        "mode": action.mode.value,
                        "target": action.target,
                        "containment": action.containment_id,
                    }
                    items.append(
                        (at_us, {"at": instant(at_us), "kind": kind, "actor": by, "detail": detail})
                    )
        return [item for _, item in sorted(items, key=lambda pair: pair[0])]

    # --- scope runs -----------------------------------------------------------------------

    def record_scope(
        self, actor: Actor, incident_id: int, document: dict[str, Any], covers: runs.Covers
    ) -> runs.ScopeRun:
        """Keep this run whole, numbered after the incident's previous one, with what changed
        since that one in ``document["incident"]["changes"]``; its ledger entry holds the
        number and the document's digest. Returns after the run and its entry are durable."""
        lines = {
            tier: {line["patient"]: line["categories"] for line in document["tiers"][tier]}
            for tier in document["tiers"]
        }
        # The lists apart from the tiers too (a registration more since the last run was
        # in no run's changes: review of stop 63); a registered line by the clinics it
        # gave and took.
        lines["changed"] = {line["patient"]: line["categories"] for line in document["changed"]}
        lines["registered"] = {
            line["patient"]: [
                *(f"registered_at:{clinic}" for clinic in line.get("registered_at", ())),
                *(f"ended_at:{clinic}" for clinic in line.get("ended_at", ())),
            ]
            for line in document.get("registered", ())
        }
        with write_transaction(self.engine) as connection:
            # Runs of one incident are numbered one at a time: on PostgreSQL the incident's
            # row is the lock (SQLite's write transaction already holds the database's).
            locked = select(incident.c.incident_id).where(incident.c.incident_id == incident_id)
            if connection.dialect.name == "postgresql":
                locked = locked.with_for_update()
            connection.execute(locked)
            previous = connection.execute(
                select(incident_scope_run.c.lines, incident_scope_run.c.at_us)
                .where(incident_scope_run.c.incident_id == incident_id)
                .order_by(incident_scope_run.c.run_id.desc())
                .limit(1)
            ).first()
            changes = compare_runs(orjson.loads(previous.lines) if previous else None, lines)
            if previous is not None:
                changes["previous_run"] = instant(int(previous.at_us))
            document["incident"]["changes"] = changes
            number = runs.next_number(connection, incident_id)
            text = runs.canonical(document)
            sha256 = runs.digest(text)
            summary = {tier: len(lines[tier]) for tier in document["tiers"]}
            detail = {
                "incident": incident_id,
                "patients": summary,
                "run": number,
                "sha256": sha256,
                "covers": {"audit": covers.audit, "unwrap": covers.unwrap},
            }
            seq = self._record(connection, Tag.INCIDENT_SCOPED, actor, "scope", detail)
            at_us = self.now_us()
            connection.execute(
                insert(incident_scope_run).values(
                    incident_id=incident_id,
                    at_us=at_us,
                    lines=orjson.dumps(lines, option=orjson.OPT_SORT_KEYS).decode(),
                    number=number,
                    actor=actor.principal,
                    audit_size=covers.audit,
                    unwrap_size=covers.unwrap,
                    # Sealed: it holds the incident's title (an officer's words).
                    document=self.words.seal(
                        incident_id, runs.sealed_field(number), text.decode("utf-8")
                    ),
                    sha256=sha256,
                    ledger_seq=seq,
                )
            )
            self._event(connection, incident_id, "scoped", actor, detail, seq)
        return runs.ScopeRun(
            incident_id, number, at_us, actor.principal, covers, sha256, seq, document
        )

    def scope_run(self, incident_id: int, number: int | None = None) -> runs.ScopeRun:
        """A kept run with its document (None: the latest), checked against its digest and
        ledger entry; ScopeRunMissing when there is none (IncidentNotFound: no incident)."""
        self.get(incident_id)
        return runs.read(self.engine, self.ledger.store, self.words, incident_id, number)

    def scope_runs(self, incident_id: int) -> list[runs.ScopeRun]:
        """The incident's runs, newest first, without their documents."""
        self.get(incident_id)
        return runs.listing(self.engine, incident_id)


def compare_runs(
    before: dict[str, dict[str, list[str]]] | None, after: dict[str, dict[str, list[str]]]
) -> dict[str, Any]:
    """Per tier: patients added, removed, and those whose categories changed."""
    if before is None:
        return {"first_run": True}
    changes: dict[str, Any] = {"first_run": False}
    for tier, now in after.items():
        was = before.get(tier, {})
        added = sorted(set(now) - set(was))
        removed = sorted(set(was) - set(now))
        widened = {
            patient: sorted(set(now[patient]) - set(was[patient]))
            for patient in sorted(set(now) & set(was))
            if set(now[patient]) != set(was[patient])
        }
        if added or removed or widened:
            changes[tier] = {"added": added, "removed": removed, "categories_changed": widened}
    return changes


def _window(found: Incident) -> dict[str, Any]:
    return {
        "since": instant(found.since_us),
        "until": instant(found.until_us) if found.until_us is not None else None,
    }


def _changes(before: Incident, after: Incident) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if before.title != after.title:
        changes["title"] = after.title
    if before.status != after.status:
        changes["status"] = after.status.value
    if (before.since_us, before.until_us) != (after.since_us, after.until_us):
        changes["window"] = _window(after)
    if before.compromised != after.compromised:
        was, now = before.compromised.as_json(), after.compromised.as_json()
        changes["compromised"] = {key: now[key] for key in now if now[key] != was[key]}
    return changes
