"""Access control for the gate: who a request acts for, and the facts a decision needs."""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Select, and_, false, or_, select

from carevault.access import scopes as smart
from carevault.access.breakglass import BreakGlass
from carevault.access.care import CareRelationships
from carevault.access.registrations import Registrations
from carevault.access.sessions import Sessions, SessionState
from carevault.access.tables import client_app, staff_account
from carevault.access.tokens import InvalidToken, TokenSigner
from carevault.clock import Clock, to_micros, utc_now
from carevault.db import read_transaction, refuse_on_the_loop
from carevault.domain.categories import HEALTH_CATEGORIES
from carevault.domain.policy import Actor, Target
from carevault.domain.roles import CLINICIANS, GROUP_WIDE, Role
from carevault.fhir.registry import RESOURCE_TYPES, ResourceType
from carevault.vault.records import Head
from carevault.vault.tables import resource_head

_SYSTEM = frozenset({"system"})
_CLINICS_SECONDS = 5.0
_USER = frozenset({"user", "patient"})


class Unauthenticated(Exception):
    """No valid credentials: 401. ``reason`` is for the audit; the client sees a generic message."""

    def __init__(
        self, reason: str, session_id: str | None = None, principal: str | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.session_id = session_id
        self.principal = principal


class StepUpRequired(Unauthenticated):
    """The session is live but must present a fresh TOTP code before more data: 401 with
    a challenge that says so (RFC 9470 ``insufficient_user_authentication``)."""


@dataclass(frozen=True)
class Authenticated:
    actor: Actor
    session_id: str
    client_id: str
    scopes: smart.Scopes


class AccessControl:
    def __init__(
        self,
        engine: Engine,
        signer: TokenSigner,
        sessions: Sessions,
        care: CareRelationships,
        break_glass: BreakGlass,
        registrations: Registrations,
        clock: Clock = utc_now,
    ) -> None:
        self.engine = engine
        self.signer = signer
        self.sessions = sessions
        self.care = care
        self.break_glass = break_glass
        self.registrations = registrations
        self.clock = clock
        self._clinics: tuple[float, frozenset[str], dict[str, frozenset[str]]] | None = None
        self._clinics_lock = threading.Lock()
        #: session id -> (the session state it was worked out from, token scope, actor).
        self._actors: dict[str, tuple[SessionState, str, Authenticated]] = {}

    def authenticate(self, bearer: str | None) -> Authenticated:
        """The actor behind a bearer token, if the token and its session are valid now."""
        if not bearer:
            raise Unauthenticated("no bearer token")
        try:
            claims = self.signer.verify(bearer)
        except InvalidToken as error:
            raise Unauthenticated(str(error)) from None
        return self.session_actor(claims.session_id, claims.scope)

    def session_actor(self, session_id: str, scope: str, *, fresh: bool = False) -> Authenticated:
        """The actor of a live session, for a request granted ``scope``: what a verified
        token leads to. The simulator calls it directly (``fresh``: not from the cache)."""
        state = self.sessions.state(session_id, fresh=fresh)
        # Worked out once per state the session store gives (a new object each time it
        # re-reads the session, every ``check_seconds`` at most): the same facts give the
        # same actor, and a suspension or revocation takes effect exactly when it did.
        known = self._actors.get(session_id)
        if known is not None and known[0] is state and known[1] == scope:
            return known[2]
        principal = f"staff:{state.username}" if state.username else f"client:{state.client_id}"
        if not state.live:
            raise Unauthenticated(state.reason, session_id, principal)
        if state.step_up:
            raise StepUpRequired("step-up required", session_id, principal)
        contexts = _SYSTEM if state.account_id is None else _USER
        try:
            scopes = granted_scopes(scope, state.scopes, state.client_scopes, contexts)
        except smart.InvalidScope as error:
            raise Unauthenticated(f"token scope: {error}", session_id, principal) from None
        if state.patient_pseudonym is not None:
            scopes = replace(scopes, patient=state.patient_pseudonym)
        actor = Actor(
            principal=principal,
            role=Role(state.role or "integration"),
            clinic_ids=state.clinic_ids,
            practitioner_id=state.practitioner_id,
            account_id=state.account_id,
        )
        found = Authenticated(
            actor=actor,
            session_id=session_id,
            client_id=state.client_id,
            scopes=scopes,
        )
        if len(self._actors) > 100_000:
            self._actors.clear()
        self._actors[session_id] = (state, scope, found)
        return found

    def now_us(self) -> int:
        return to_micros(self.clock())

    def target(
        self,
        actor: Actor,
        head: Head,
        now_us: int,
        connection: Connection | None = None,
        reading: Connection | None = None,
    ) -> Target:
        """The clear facts about one record that the policy decides on.

        Inside a write, ``connection`` is the write's transaction, so facts written
        earlier in the same request (a new encounter) count. ``reading``: a read
        transaction the caller holds, for whatever is not cached.
        """
        pseudonym = head.patient_pseudonym
        if pseudonym is None and RESOURCE_TYPES[head.resource_type].is_patient_data:
            # Patient data whose patient the vault never found (written before the gate
            # required one, or by the system): its clinic's, and health data no one's.
            own = frozenset({head.clinic_id} if head.clinic_id else ())
            return Target(None, own, orphan=True)
        if pseudonym is None:
            # A directory record belongs to a clinic of the group, or (an outside hospital
            # named by an import, its locations) to no one here.
            if head.resource_type == "Practitioner":
                # A practitioner who works here belongs to the clinics they work at.
                return Target(None, self.practitioner_clinics(head.resource_id))
            if head.clinic_id is None or head.clinic_id not in self.known_clinics():
                return Target(None, frozenset())
            return Target(None, frozenset({head.clinic_id}))
        patient_clinics = self._patient_clinics(head, connection, reading)
        clinics = patient_clinics | ({head.clinic_id} if head.clinic_id else set())
        care = actor.role in CLINICIANS and self.care.exists(
            pseudonym, actor.clinic_ids, actor.practitioner_id, now_us, connection, reading
        )
        glass = (
            actor.role in CLINICIANS
            and not care
            and self.break_glass.active(
                _account_id(actor), pseudonym, now_us, connection or reading
            )
            is not None
        )
        return Target(
            pseudonym,
            frozenset(clinics),
            care_relationship=care,
            break_glass=glass,
            patient_clinics=patient_clinics,
        )

    def clinics_of(
        self, head: Head, connection: Connection | None = None, reading: Connection | None = None
    ) -> frozenset[str]:
        """The clinics a record belongs to: its own, and every clinic where its patient is
        registered (their home clinic and the clinics where they proved their presence)."""
        own = frozenset({head.clinic_id} if head.clinic_id else ())
        return own | self._patient_clinics(head, connection, reading)

    def _patient_clinics(
        self, head: Head, connection: Connection | None, reading: Connection | None
    ) -> frozenset[str]:
        """Where the record's patient is: their home clinic and registrations."""
        if head.patient_pseudonym is None:
            return frozenset()
        # A Patient's own clinic is its home clinic: only the other registrations to look up.
        home = head.clinic_id if head.resource_type == "Patient" else None
        return self.registrations.clinics(head.patient_pseudonym, connection, reading, home=home)

    def restriction(
        self, actor: Actor, rt: ResourceType, now_us: int
    ) -> ColumnElement[bool] | None:
        """SQL over resource_head that keeps exactly the records whose main category the
        policy would let ``actor`` read, so that counts and pages never reveal the rest."""
        if not rt.is_patient_data or actor.role in GROUP_WIDE:
            return None
        reach: list[ColumnElement[bool]] = []
        if actor.role in CLINICIANS:
            reach.append(_held(self.care.patients(actor.clinic_ids, actor.practitioner_id, now_us)))
            glass = self.break_glass.patients(_account_id(actor), now_us)
            if glass:
                reach.append(resource_head.c.patient_pseudonym.in_(glass))
        if not (actor.role in CLINICIANS and rt.category in HEALTH_CATEGORIES) and actor.clinic_ids:
            clinics = sorted(actor.clinic_ids)
            reach.append(resource_head.c.clinic_id.in_(clinics))
            reach.append(
                resource_head.c.patient_pseudonym.in_(self.registrations.patients_at(clinics))
            )
        return or_(*reach) if reach else false()

    def known_clinics(self) -> frozenset[str]:
        """The group's clinics: every clinic a staff account or a client app works at.
        An Organization that is none of them is an outside provider (a hospital named in
        an imported history), where no one here works. Re-read every few seconds."""
        return self._directory()[0]

    def practitioner_clinics(self, practitioner_id: str) -> frozenset[str]:
        """The clinics where the staff who are ``practitioner_id`` work (none for an
        outside practitioner, named by an import). Re-read every few seconds."""
        return self._directory()[1].get(practitioner_id, frozenset())

    def _directory(self) -> tuple[frozenset[str], dict[str, frozenset[str]]]:
        moment = time.monotonic()
        with self._clinics_lock:
            if self._clinics is not None and moment - self._clinics[0] < _CLINICS_SECONDS:
                return self._clinics[1], self._clinics[2]
        refuse_on_the_loop("the staff directory")
        with read_transaction(self.engine) as connection:
            staff = connection.execute(
                select(staff_account.c.clinic_ids, staff_account.c.practitioner_id)
            ).all()
            apps = [*connection.execute(select(client_app.c.clinic_ids)).scalars()]
        lists = [row.clinic_ids for row in staff] + apps
        known = frozenset(clinic for text in lists for clinic in text.split(",") if clinic)
        by_practitioner: dict[str, frozenset[str]] = {}
        for row in staff:
            if row.practitioner_id:
                clinics = frozenset(filter(None, row.clinic_ids.split(",")))
                by_practitioner[row.practitioner_id] = (
                    by_practitioner.get(row.practitioner_id, frozenset()) | clinics
                )
        with self._clinics_lock:
            self._clinics = (moment, known, by_practitioner)
        return known, by_practitioner

    @staticmethod
    def confine(restrict: ColumnElement[bool] | None, pseudonym: str) -> ColumnElement[bool]:
        """``restrict`` narrowed to one patient's records (a patient launch's scopes)."""
        mine = resource_head.c.patient_pseudonym == pseudonym
        return mine if restrict is None else and_(restrict, mine)


@functools.lru_cache(maxsize=1024)
def granted_scopes(
    token_scope: str, session_scope: str, client_scope: str, contexts: frozenset[str]
) -> smart.Scopes:
    """What a request may do: the scopes stored with its session, never more than the
    token claims nor than its app is registered for now (a registration narrowed after
    sign-in narrows live sessions too). The token's claim alone is never trusted."""
    granted = smart.parse(session_scope, allowed_contexts=contexts)
    if token_scope != session_scope:
        granted = smart.narrow(smart.parse(token_scope, allowed_contexts=contexts), granted)
    try:
        registered = smart.parse(client_scope, allowed_contexts=contexts)
    except smart.InvalidScope:
        # Registered for another context than the session's: nothing of it applies.
        registered = smart.Scopes((), frozenset())
    if registered != granted:
        granted = smart.narrow(granted, registered)
    return granted


def _account_id(actor: Actor) -> str:
    return actor.account_id or ""


def _held(pseudonyms: Any) -> ColumnElement[bool]:
    """The record's patient is among ``pseudonyms`` (a one-column select over one table),
    written as a correlated EXISTS: SQLite evaluates ``IN (subquery)`` by scanning the
    subquery's table whole for each search (every care relationship of the group, 14 ms
    a patient's page at 2,000 patients and growing), where EXISTS probes that table's
    patient index for each candidate record (0.02 ms). A record without a patient
    matches neither way."""
    if not isinstance(pseudonyms, Select):
        raise TypeError("expected a select of patient pseudonyms")
    column = pseudonyms.selected_columns[0]
    held: ColumnElement[bool] = pseudonyms.where(
        column == resource_head.c.patient_pseudonym
    ).exists()
    return held
