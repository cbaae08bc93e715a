"""Where a patient is registered: their home clinic, and the clinics where they proved
their presence (or where the system registered them on import).

A patient's registrations decide which clinics' staff may see them at all, and where a
visit opens their record (``carevault.domain.care``). Only the gate adds one, inside the
transaction that records why.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Engine,
    LargeBinary,
    Select,
    String,
    bindparam,
    cast,
    delete,
    false,
    func,
    insert,
    null,
    select,
    true,
    union,
)

from carevault.access.tables import patient_registration
from carevault.access.throttle import REGISTRATION, Counted, SignInThrottle
from carevault.clock import Clock, utc_now
from carevault.db import driver_all, read_transaction
from carevault.keys.anchors import AlteredRows, seal_fields, seal_matches, seal_unsealed
from carevault.vault.tables import resource_head

#: How long an answer is remembered outside writes: as stale at most as session state.
CACHE_SECONDS = 0.5

#: Failed registrations an account may make in ``FAILURE_WINDOW_SECONDS`` before it must
#: wait: a patient mistypes once or twice; a desk that fishes for patients fails often.
#: The throttle's ``registration`` level holds them, in every server process: five misses
#: drain in 15 minutes; after the fifth the account waits 3 minutes, doubling with each
#: further miss up to 15.
MAX_FAILURES = REGISTRATION.free
FAILURE_WINDOW_SECONDS = REGISTRATION.max_wait_seconds
#: The audit reason of a registration of a patient the clinic holds already: it
#: registers no one, and counts as a failure (here and in ``registration-fishing``).
ALREADY_REGISTERED = "already registered"
#: The audit reason of a registration of a patient no one had recorded seeing: their
#: home moved to the registering clinic and their other ties ended
#: (``gate.registration``).
FIRST_PRESENCE = "registered on first proof of presence: home moved here, other ties ended"


class TooManyAttempts(Exception):
    """Too many failed registrations from this account lately (429)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "too many registrations that registered no patient; try again later "
            "or ask the privacy officer"
        )
        self.retry_after = retry_after


class Attempt:
    """One counted attempt (``FailureCounter.counting``): a miss unless told otherwise."""

    def __init__(self) -> None:
        self.was_missed = False

    def missed(self) -> None:
        """It registered (or would have created) no one: the count stands."""
        self.was_missed = True


def fisher(account_id: str | None, practitioner_id: str | None, principal: str) -> str:
    """Whose failed registrations an attempt counts against: a practitioner's, shared by
    every account naming them (as the release budget counts a person), else the
    account's, else (a client) the principal's. A person's second login was a second
    allowance of birth-date guesses (adversary round 57)."""
    if practitioner_id:
        return f"practitioner:{practitioner_id}"
    return account_id or principal


class FailureCounter:
    """Failed registrations per account, kept in the database by the throttle
    (``access.throttle``'s ``registration`` level), so that every server process counts
    them all: with several workers an account gets its allowance once, not once each.
    Each attempt is counted before it is made and given back if it was no miss, so that
    attempts sent together cannot all pass on the same count."""

    def __init__(self, throttle: SignInThrottle) -> None:
        self._throttle = throttle

    @contextmanager
    def counting(self, account_id: str) -> Iterator[Attempt]:
        """TooManyAttempts (nothing counted) while the account waits; otherwise the
        attempt is counted, and given back unless the block calls ``missed``. For an
        attempt whose every answer tells something (``$register``: a hit tells as much as
        a miss), so that none is answered during a wait."""
        account = account_id[:200]
        counted = self._count(account)
        attempt = Attempt()
        try:
            yield attempt
        finally:
            if not attempt.was_missed:
                self._throttle.registration_refund(account, counted)

    def check(self, account_id: str) -> None:
        """TooManyAttempts while the account waits (nothing is counted)."""
        verdict = self._throttle.registration_check(account_id[:200])
        if not verdict.allowed:
            raise TooManyAttempts(verdict.wait_seconds)

    def miss(self, account_id: str) -> None:
        """Count a refusal already decided (a write refused as another clinic's patient's
        twin, its transaction gone); TooManyAttempts instead if the account began to wait
        meanwhile: refusals sent together are answered one at a time against the count,
        so no more than the allowance say what they found."""
        self._count(account_id[:200])

    def _count(self, account: str) -> Counted:
        """One miss counted now; TooManyAttempts (nothing counted) while it waits."""
        verdict, counted = self._throttle.registration_begin(account)
        if counted is None:
            raise TooManyAttempts(verdict.wait_seconds)
        return counted


class Proof(StrEnum):
    """How a registration was established."""

    #: The patient showed an identifier (HKID or MRN) that matched, with their birth date.
    PRESENCE = "presence"
    #: A privacy officer or the clinic managers of both clinics moved the patient.
    TRANSFER = "transfer"
    #: Data loaded by the system (seeding, import) stated a visit there.
    SYSTEM = "system"
    #: A privacy officer confirmed who the patient is, where ``$register`` was refused for
    #: them (``gate.registration.register_confirmed``).
    OFFICER = "officer"


#: Built once and run on the driver (``db.driver_all``): every read of a patient's record
#: looks up where they are registered, and building and executing the statement through
#: SQLAlchemy cost several times the indexed lookup itself.
#: Each row with what its seal covers (``SEALED_COLUMNS``) and its seal.
_REGISTERED: Select[Any] = select(
    patient_registration.c.clinic_id,
    patient_registration.c.registered_us,
    patient_registration.c.registered_by,
    patient_registration.c.proof,
    patient_registration.c.seal,
    # Not a home clinic: a registration, checked against its seal. A literal of the
    # statement's, never a column a database writer could set (a registration with its
    # ``registered_us`` NULL passed for a home clinic: review of round 70).
    false().label("home"),
).where(patient_registration.c.patient_pseudonym == bindparam("registered_patient"))
#: The same, with the home clinic (the clinic of the patient's Patient record; no
#: registration, so no ``registered_us``: its record is sealed in the vault).
_WITH_HOME: Any = union(
    select(
        resource_head.c.clinic_id,
        cast(null(), BigInteger),
        cast(null(), String),
        cast(null(), String),
        cast(null(), LargeBinary),
        true(),
    ).where(
        resource_head.c.patient_pseudonym == bindparam("registered_patient"),
        resource_head.c.resource_type == bindparam("registered_type"),
        resource_head.c.clinic_id.is_not(None),
    ),
    _REGISTERED,
)

log = logging.getLogger("carevault.access")


def registration_name(pseudonym: str, clinic_id: str) -> str:
    """How a registration is named where it is told of (it has no id of its own): a
    digest of its key and the clinic it claims. Never the pseudonym: the alert goes by
    mail and webhook, which carry no patient, and the row's patient is whoever the
    insider wrote (review of stop 57)."""
    digest = hashlib.sha256(f"{pseudonym}\0{clinic_id}".encode()).hexdigest()[:12]
    return f"{digest}@{clinic_id}"


def registration_seal(
    key: bytes, pseudonym: str, clinic_id: str, registered_us: Any, by: str, proof: str
) -> bytes:
    """The seal of a ``patient_registration`` row as stored (adversary round 70)."""
    # As stored, never coerced: a time written as text must not seal as the number.
    fields: list[object] = [pseudonym, clinic_id, registered_us, by, proof]
    return seal_fields(key, "carevault-registration/1", fields)


def registered_columns(pseudonym: ColumnElement[Any]) -> tuple[Any, Any]:
    """PostgreSQL: two columns to add to a query that yields a patient's ``pseudonym``,
    with what ``clinics`` looks up for them in the same round trip (``remember`` takes
    them): the clinics where they are registered, and the clinics of their Patient
    record (their home clinic), each an array (NULL when there is none)."""
    home_head = resource_head.alias("home_head")
    registered = (
        select(func.array_agg(patient_registration.c.clinic_id))
        .where(patient_registration.c.patient_pseudonym == pseudonym)
        .scalar_subquery()
    )
    homes = (
        select(func.array_agg(home_head.c.clinic_id))
        .where(
            home_head.c.patient_pseudonym == pseudonym,
            home_head.c.resource_type == bindparam("home_type"),
            home_head.c.clinic_id.is_not(None),
        )
        .scalar_subquery()
    )
    return registered.label("registered_clinics"), homes.label("home_clinics")


class Registrations:
    def __init__(self, engine: Engine, clock: Clock = utc_now) -> None:
        self.engine = engine
        self.failures = FailureCounter(SignInThrottle(engine, clock))
        #: (pseudonym, with home) -> (when the answer was asked for, the answer); None for
        #: an answer forgotten then (a registration made in this process).
        self._answers: dict[tuple[str, bool], tuple[float, frozenset[str] | None]] = {}
        self._lock = threading.Lock()
        #: The key rows are sealed with (None with encryption off) and whether every row
        #: has been sealed (the composition root sets both: ``keys.anchors``): a
        #: registration that does not match places the patient nowhere (round 70).
        self.seal_key: bytes | None = None
        self.all_sealed = False
        #: Registrations found altered, each told once a process (``keys.anchors``).
        self.altered = AlteredRows(log, "registration", "it places the patient nowhere")

    def _genuine(
        self, pseudonym: str, clinic_id: str, registered_us: Any, by: str, proof: str, seal: Any
    ) -> bool:
        if self.seal_key is None:
            return True
        expected = registration_seal(self.seal_key, pseudonym, clinic_id, registered_us, by, proof)
        genuine = seal_matches(seal, expected, self.all_sealed)
        if not genuine:
            self.altered.tell(registration_name(pseudonym, clinic_id))
        return genuine

    def _clinics(self, pseudonym: str, rows: Sequence[Sequence[Any]]) -> frozenset[str]:
        """The clinics of rows of ``_REGISTERED`` (or ``_WITH_HOME``, whose home clinic is
        marked so by the statement), those whose registration does not match its seal
        left out."""
        return frozenset(
            str(row[0])
            for row in rows
            if row[5] or self._genuine(pseudonym, str(row[0]), row[1], row[2], row[3], row[4])
        )

    def seal_unsealed(self) -> int:
        """Seal every registration that has no seal, as it stands (once, when sealing
        begins); returns how many."""
        key = self.seal_key
        if key is None:
            return 0
        table = patient_registration
        return seal_unsealed(
            self.engine,
            table,
            [table.c.patient_pseudonym, table.c.clinic_id],
            lambda row: registration_seal(
                key,
                row.patient_pseudonym,
                row.clinic_id,
                row.registered_us,
                row.registered_by,
                row.proof,
            ),
        )

    def _keep(
        self, answers: Iterable[tuple[tuple[str, bool], frozenset[str]]], asked: float
    ) -> None:
        """Cache answers read by a query sent at ``asked`` (monotonic), unless the cache
        holds something newer for them: an answer asked for later, or a registration made
        since. An answer is as old as the moment its query was sent, not the moment it
        arrived: one that arrives late (an event loop busy elsewhere) is kept no longer."""
        with self._lock:
            if len(self._answers) > 50_000:
                self._answers.clear()
            for key, found in answers:
                held = self._answers.get(key)
                if held is None or held[0] <= asked:
                    self._answers[key] = (asked, found)

    def clinics(
        self,
        pseudonym: str,
        connection: Connection | None = None,
        reading: Connection | None = None,
        *,
        home: str | None = None,
    ) -> frozenset[str]:
        """The clinics where the patient is registered, their home clinic included.

        ``home``: the home clinic when the caller already knows it (it holds the Patient's
        head), which saves looking it up. ``connection``: a write's transaction (what it
        wrote counts; no cache). ``reading``: a read transaction the caller holds, used
        if the answer is not cached.
        """
        found = self._lookup(pseudonym, connection, reading, home is None)
        return found | {home} if home else found

    def _lookup(
        self,
        pseudonym: str,
        connection: Connection | None,
        reading: Connection | None,
        with_home: bool,
    ) -> frozenset[str]:
        statement = _WITH_HOME if with_home else _REGISTERED
        # Every value a parameter: the driver is given no value the statement holds.
        params = {"registered_patient": pseudonym, "registered_type": "Patient"}
        if connection is not None:
            return self._clinics(pseudonym, driver_all(connection, statement, params))
        key = (pseudonym, with_home)
        moment = time.monotonic()
        with self._lock:
            cached = self._answers.get(key)
        if cached is not None and cached[1] is not None and moment - cached[0] < CACHE_SECONDS:
            return cached[1]
        if reading is not None:
            found = self._clinics(pseudonym, driver_all(reading, statement, params))
        else:
            with read_transaction(self.engine) as fresh:
                found = self._clinics(pseudonym, driver_all(fresh, statement, params))
        self._keep([(key, found)], moment)
        return found

    def remember(
        self,
        pseudonym: str,
        registered: Collection[str] | None,
        homes: Collection[str] | None,
        asked: float,
    ) -> None:
        """Keep what was just read of ``pseudonym``'s registrations (``registered_columns``:
        the clinics of their registrations, and of their Patient record) as ``clinics``
        would have read it, by a query sent at ``asked`` (``time.monotonic()``): lookups
        within ``CACHE_SECONDS`` of that answer from it."""
        if registered and self.seal_key is not None:
            # Registrations to check against their seals: ``clinics`` reads them whole.
            return
        extra = frozenset(str(clinic) for clinic in registered or ())
        with_home = extra | frozenset(str(clinic) for clinic in homes or ())
        self._keep([((pseudonym, False), extra), ((pseudonym, True), with_home)], asked)

    def prefetch(self, pseudonyms: Collection[str], reading: Connection | None = None) -> None:
        """Look up the registrations of many patients at once (a page of search results),
        so that deciding on each record of the page needs no query of its own."""
        wanted = sorted(set(pseudonyms))
        if len(wanted) < 2:
            return
        homes: dict[str, set[str]] = {pseudonym: set() for pseudonym in wanted}
        extras: dict[str, set[str]] = {pseudonym: set() for pseudonym in wanted}
        home_query = select(resource_head.c.patient_pseudonym, resource_head.c.clinic_id).where(
            resource_head.c.resource_type == "Patient",
            resource_head.c.patient_pseudonym.in_(wanted),
        )
        extra_query = select(
            patient_registration.c.patient_pseudonym, *_REGISTERED.selected_columns
        ).where(patient_registration.c.patient_pseudonym.in_(wanted))
        held = read_transaction(self.engine) if reading is None else nullcontext(reading)
        moment = time.monotonic()
        with held as connection:
            for pseudonym, clinic in connection.execute(home_query):
                if clinic:
                    homes[pseudonym].add(str(clinic))
            for pseudonym, *row in connection.execute(extra_query):
                extras[pseudonym] |= self._clinics(pseudonym, [row])
        answers: list[tuple[tuple[str, bool], frozenset[str]]] = []
        for pseudonym in wanted:
            extra = frozenset(extras[pseudonym])
            answers += [((pseudonym, False), extra), ((pseudonym, True), extra | homes[pseudonym])]
        self._keep(answers, moment)

    def clinics_in(
        self, connection: Connection, pseudonyms: Collection[str]
    ) -> dict[str, frozenset[str]]:
        """Inside a write's transaction, ``clinics(pseudonym, connection)`` of many patients
        in two queries per 500 (a bulk load's batch brings hundreds of patients)."""
        wanted = sorted(set(pseudonyms))
        found: dict[str, set[str]] = {pseudonym: set() for pseudonym in wanted}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            homes = connection.execute(
                select(resource_head.c.patient_pseudonym, resource_head.c.clinic_id).where(
                    resource_head.c.patient_pseudonym.in_(chunk),
                    resource_head.c.resource_type == "Patient",
                    resource_head.c.clinic_id.is_not(None),
                )
            )
            extras = connection.execute(
                select(
                    patient_registration.c.patient_pseudonym, *_REGISTERED.selected_columns
                ).where(patient_registration.c.patient_pseudonym.in_(chunk))
            )
            for pseudonym, clinic in homes:
                found[pseudonym].add(str(clinic))
            for pseudonym, *row in extras:
                found[pseudonym] |= self._clinics(pseudonym, [row])
        return {pseudonym: frozenset(clinics) for pseudonym, clinics in found.items()}

    def register(
        self,
        connection: Connection,
        pseudonym: str,
        clinic_id: str,
        *,
        by: str,
        proof: Proof,
        now_us: int,
        known: frozenset[str] | None = None,
    ) -> bool:
        """Inside the write's transaction: register the patient at ``clinic_id``; False if
        they already were. ``known``: their clinics as the caller read them in this
        transaction and kept up to date since (saves reading them again)."""
        if clinic_id in (known if known is not None else self.clinics(pseudonym, connection)):
            return False
        seal = None
        if self.seal_key is not None:
            seal = registration_seal(
                self.seal_key, pseudonym, clinic_id, now_us, by[:120], str(proof)
            )
        connection.execute(
            insert(patient_registration).values(
                patient_pseudonym=pseudonym,
                clinic_id=clinic_id,
                registered_us=now_us,
                registered_by=by[:120],
                proof=str(proof),
                seal=seal,
            )
        )
        self._forget(pseudonym)
        return True

    def proved_at(self, pseudonym: str) -> frozenset[str]:
        """The clinics where the patient proved their presence, or a privacy officer
        confirmed who they are (``Proof.PRESENCE``, ``Proof.OFFICER``), those whose
        registration does not match its seal left out."""
        with read_transaction(self.engine) as connection:
            rows = driver_all(connection, _REGISTERED, {"registered_patient": pseudonym})
        proved = (Proof.PRESENCE, Proof.OFFICER)
        return self._clinics(pseudonym, [row for row in rows if row[3] in proved])

    def end(self, connection: Connection, pseudonym: str, clinic_id: str) -> bool:
        """Inside the write's transaction: the patient's registration at ``clinic_id``
        ends (their home is not a registration: it changes by a transfer); False if
        there was none."""
        ended = connection.execute(
            delete(patient_registration)
            .where(
                patient_registration.c.patient_pseudonym == pseudonym,
                patient_registration.c.clinic_id == clinic_id,
            )
            .returning(patient_registration.c.clinic_id)
        ).first()
        self._forget(pseudonym)
        return ended is not None

    def end_all(self, connection: Connection, pseudonym: str) -> list[str]:
        """Inside the write's transaction: the patient is registered nowhere any more
        but at their home clinic; the clinics whose registrations ended."""
        ended = connection.execute(
            delete(patient_registration)
            .where(patient_registration.c.patient_pseudonym == pseudonym)
            .returning(patient_registration.c.clinic_id)
        ).scalars()
        clinics = sorted({str(clinic) for clinic in ended})
        self._forget(pseudonym)
        return clinics

    def _forget(self, pseudonym: str) -> None:
        """Answers about the patient asked for before now are not kept."""
        forgotten = time.monotonic()
        with self._lock:
            self._answers[(pseudonym, True)] = (forgotten, None)
            self._answers[(pseudonym, False)] = (forgotten, None)

    def patients_at(self, clinic_ids: list[str]) -> Any:
        """A subquery of the pseudonyms of patients registered at any of ``clinic_ids``."""
        return union(
            select(resource_head.c.patient_pseudonym).where(
                resource_head.c.resource_type == "Patient",
                resource_head.c.clinic_id.in_(clinic_ids),
            ),
            select(patient_registration.c.patient_pseudonym).where(
                patient_registration.c.clinic_id.in_(clinic_ids)
            ),
        )
