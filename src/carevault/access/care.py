"""Care relationships: who may open a patient's health data, and until when.

The rules of where a relationship may come from are in ``carevault.domain.care``; here
they meet the records. When an Encounter, Appointment, CareTeam or ServiceRequest is
written, ``care_event`` reads what it says about care (``fhir.care``: the record alone,
which a bulk load's checking processes read for the writer; ``event_at``: with the
clinic it is placed at), the gate asks the rules what it opens, and ``replace`` stores
that inside the same transaction, in a table of clear clinic ids, blind practitioner
tokens and windows. A clinician has a care relationship
with a patient now if a window covers now for one of their clinics or for them as a
practitioner.

Each row is sealed (``care_seal``: an HMAC under a key derived from the index key, which
the database does not hold; adversary round 70): a row inserted or widened by someone
who may write to the database but holds no key opens nothing to a clinician's reading
(``exists``). What it may still change is a search's count (``patients``, SQL), left open;
the detectors take no row that does not match as explaining an access
(``detect.explain``).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import tzinfo
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    bindparam,
    delete,
    insert,
    or_,
    select,
    update,
)

from carevault.access.tables import care_relationship, care_vouched, staff_account
from carevault.db import (
    driver_all,
    driver_executemany,
    hold_record_writes_alone,
    read_transaction,
    write_transaction,
)
from carevault.domain.care import CareEvent, CareSource, Opened, Window
from carevault.fhir.care import CARE_TYPES as CARE_TYPES
from carevault.fhir.care import CareFacts, care_facts
from carevault.keys.anchors import AlteredRows, seal_fields, seal_matches
from carevault.vault.tables import resource_head

log = logging.getLogger("carevault.access")

#: The columns a care relationship's seal covers, in order (all but the seal).
SEALED_COLUMNS = (
    "patient_pseudonym",
    "clinic_id",
    "practitioner_token",
    "source_row_id",
    "valid_from_us",
    "valid_until_us",
    "granted_by",
)


def _plain(value: Any) -> Any:
    return bytes(value).hex() if isinstance(value, bytes | bytearray | memoryview) else value


def care_name(row: Mapping[Any, Any]) -> str:
    """How a care relationship is named where it is told of (it has no id of its own): a
    digest of what its seal covers, and to whom it opens (its clinic, or a
    practitioner). Never the pseudonym (``registrations.registration_name``)."""
    covered = repr(tuple(row[name] for name in SEALED_COLUMNS)).encode()
    to = row["clinic_id"] if row["clinic_id"] is not None else "a practitioner"
    return f"{hashlib.sha256(covered).hexdigest()[:12]}@{to}"


def care_seal(key: bytes, row: Mapping[Any, Any]) -> bytes:
    """The seal of a ``care_relationship`` row as stored (its ``SEALED_COLUMNS``)."""
    fields: list[object] = [*(_plain(row[name]) for name in SEALED_COLUMNS)]
    return seal_fields(key, "carevault-care/1", fields)


def care_event(
    resource_type: str, resource: dict[str, Any], clinic_id: str | None, zone: tzinfo
) -> CareEvent | None:
    """What a record says about care (pure); None if it says nothing that could open one."""
    facts = care_facts(resource_type, resource, zone)
    return None if facts is None else event_at(facts, clinic_id)


def event_at(facts: CareFacts, clinic_id: str | None) -> CareEvent:
    """The care a record says (``fhir.care.care_facts``), at the clinic it is placed at."""
    kind = facts.source
    if kind is CareSource.REFERRAL:
        # A referral's clinic is the one it sends the patient to, not the one it is from.
        clinic_id = facts.referred_to
    return CareEvent(
        source=kind,
        clinic_id=clinic_id,
        practitioner_ids=facts.practitioner_ids,
        starts_us=facts.starts_us,
        ends_us=facts.ends_us,
        through_directory=clinic_id is not None
        and kind not in (CareSource.REFERRAL, CareSource.CARE_TEAM)
        and clinic_id not in facts.named_organizations,
    )


def _whom(clinic_id: str | None, token: bytes | None) -> tuple[str, str | bytes | None]:
    """A relationship's addressee: its clinic, else its practitioner's token."""
    return ("clinic", clinic_id) if clinic_id else ("practitioner", token)


@functools.cache
def _exists(clinics: int) -> Select[Any]:
    """The care relationships a clinician (by one of ``clinics`` clinics, or by
    practitioner token) has with a patient now, with their seals (``exists`` checks
    them). Built once per number of clinics: an expanding ``IN`` parameter had
    SQLAlchemy rewrite the SQL on every execution, which cost more than the query."""
    return select(
        *(care_relationship.c[name] for name in SEALED_COLUMNS), care_relationship.c.seal
    ).where(
        care_relationship.c.patient_pseudonym == bindparam("pseudonym"),
        or_(
            care_relationship.c.clinic_id.in_([bindparam(f"clinic_{n}") for n in range(clinics)]),
            care_relationship.c.practitioner_token == bindparam("token"),
        ),
        care_relationship.c.valid_from_us <= bindparam("now"),
        care_relationship.c.valid_until_us >= bindparam("now"),
    )


#: Built once, run on the driver: a bulk load inserts thousands of relationships a batch.
_INSERT = insert(care_relationship).values(
    **{column.name: bindparam(column.name) for column in care_relationship.columns}
)

#: Built once: every record of care written (thousands a second in a bulk load) clears.
_CLEAR = delete(care_relationship).where(
    care_relationship.c.source_row_id == bindparam("cleared_row_id")
)


class CareRelationships:
    def __init__(
        self,
        engine: Engine,
        practitioner_token: Callable[[str], bytes],
        *,
        cache_seconds: float = 0.5,
    ) -> None:
        self.engine = engine
        self._blind = practitioner_token
        self._tokens: dict[str, bytes] = {}
        # Answers of ``exists`` outside a write, for as long as session state may be
        # stale anyway; a relationship written by this process clears them at once.
        self.cache_seconds = cache_seconds
        self._answers: dict[tuple[str, frozenset[str], str | None], tuple[float, bool]] = {}
        self._lock = threading.Lock()
        #: The key rows are sealed with (None with encryption off) and whether every row
        #: has been sealed (the composition root sets both: ``keys.anchors``).
        self.seal_key: bytes | None = None
        self.all_sealed = False
        #: Rows found altered, each told once a process (``keys.anchors``).
        self.altered = AlteredRows(log, "care relationship", "it opens nothing")

    def genuine(self, row: Mapping[Any, Any]) -> bool:
        """Whether a row is as CareVault wrote it (always, with no key); one that is not
        opens nothing and explains nothing, and is told once (``care_name``)."""
        if self.seal_key is None:
            return True
        genuine = seal_matches(row["seal"], care_seal(self.seal_key, row), self.all_sealed)
        if not genuine:
            self.altered.tell(care_name(row))
        return genuine

    def seal(self, row: Mapping[Any, Any]) -> bytes | None:
        """The seal ``row`` is stored with (None with encryption off)."""
        return None if self.seal_key is None else care_seal(self.seal_key, row)

    def forget_answers(self) -> None:
        """Drop the answers ``exists`` keeps: rows were rewritten outside a write."""
        with self._lock:
            self._answers.clear()

    def seal_unsealed(self) -> int:
        """Seal every row that has no seal, as it stands (once, when sealing begins);
        returns how many."""
        if self.seal_key is None:
            return 0
        with write_transaction(self.engine) as connection:
            # Record writes rewrite these rows too: one at a time (``client_marks``).
            hold_record_writes_alone(connection)
            rows = connection.execute(
                select(care_relationship).where(care_relationship.c.seal.is_(None))
            ).all()
            for row in rows:
                connection.execute(
                    update(care_relationship)
                    .where(
                        *(
                            care_relationship.c[name].is_(None)
                            if row._mapping[name] is None
                            else care_relationship.c[name] == row._mapping[name]
                            for name in SEALED_COLUMNS
                        ),
                        care_relationship.c.seal.is_(None),
                    )
                    .values(seal=self.seal(row._mapping))
                )
        return len(rows)

    def _token(self, practitioner_id: str) -> bytes:
        found = self._tokens.get(practitioner_id)
        if found is None:
            found = self._blind(practitioner_id)
            if len(self._tokens) > 10_000:
                self._tokens.clear()
            self._tokens[practitioner_id] = found
        return found

    def clear(self, connection: Connection, source_row_id: int) -> tuple[Opened[bytes], ...]:
        """Inside the write's transaction: the source opens nothing any more. Returns what
        it opened: who alone made each relationship (``granted_by`` tokens; None where no
        one alone did) and its window, for the next version's ``made_by``."""
        with self._lock:
            self._answers.clear()
        opened = tuple(
            Opened(
                None if row.granted_by is None else bytes(row.granted_by),
                row.valid_from_us,
                row.valid_until_us,
                _whom(
                    row.clinic_id,
                    None if row.practitioner_token is None else bytes(row.practitioner_token),
                ),
            )
            for row in connection.execute(
                select(
                    care_relationship.c.granted_by,
                    care_relationship.c.valid_from_us,
                    care_relationship.c.valid_until_us,
                    care_relationship.c.clinic_id,
                    care_relationship.c.practitioner_token,
                ).where(care_relationship.c.source_row_id == source_row_id)
            )
        )
        connection.execute(_CLEAR, {"cleared_row_id": source_row_id})
        return opened

    def end_at(self, connection: Connection, pseudonym: str, clinic_id: str) -> None:
        """Inside the write's transaction: the relationships with the patient that
        ``clinic_id`` holds end: those open to the clinic, and those the clinic's own
        records opened (a booking there with one of its doctors opens the patient to
        that doctor), as when an officer ends the patient's registration there. The
        records stay; written again, they open what the rules then say."""
        with self._lock:
            self._answers.clear()
        placed_there = select(resource_head.c.row_id).where(
            resource_head.c.patient_pseudonym == pseudonym,
            resource_head.c.clinic_id == clinic_id,
        )
        connection.execute(
            delete(care_relationship).where(
                care_relationship.c.patient_pseudonym == pseudonym,
                or_(
                    care_relationship.c.clinic_id == clinic_id,
                    care_relationship.c.source_row_id.in_(placed_there),
                ),
            )
        )

    def end_all(self, connection: Connection, pseudonym: str) -> None:
        """Inside the write's transaction: every relationship with the patient ends (a
        registration that moved them elsewhere; ``gate.registration``). The records
        that opened them stay; written again, they open what the rules then say."""
        with self._lock:
            self._answers.clear()
        connection.execute(
            delete(care_relationship).where(care_relationship.c.patient_pseudonym == pseudonym)
        )

    def add(
        self,
        connection: Connection,
        source_row_id: int,
        pseudonym: str,
        relationships: Iterable[Window],
        made_by: bytes | None = None,
    ) -> None:
        """Inside the write's transaction: the source opens these (after ``clear``).
        ``made_by``: the ``maker`` token of the principal whose own writes alone made
        them (``domain.care.made_by``)."""
        self.add_rows(connection, self.rows(source_row_id, pseudonym, relationships, made_by))

    def vouched(
        self,
        connection: Connection,
        pseudonym: str,
        relationships: Iterable[Window],
        now_us: int,
    ) -> None:
        """Inside the write's transaction: a care team or a referral opened the record to
        these. Kept when the record ends (completed, revoked, deleted), for ``ever``: the
        doctor referred to may end the referral himself."""
        # Once each: a care team saved day after day vouches for the same people.
        held = {
            (
                row.clinic_id,
                None if row.practitioner_token is None else bytes(row.practitioner_token),
            )
            for row in connection.execute(
                select(care_vouched.c.clinic_id, care_vouched.c.practitioner_token).where(
                    care_vouched.c.patient_pseudonym == pseudonym
                )
            )
        }
        rows: dict[tuple[str | None, bytes | None], dict[str, Any]] = {}
        for item in relationships:
            party = self._party(pseudonym, item)
            key = (party["clinic_id"], party["practitioner_token"])
            if key not in held:
                rows[key] = {**party, "vouched_us": now_us}
        if rows:
            connection.execute(insert(care_vouched), list(rows.values()))

    def _party(self, pseudonym: str, item: Window) -> dict[str, Any]:
        """Whose record ``item`` opens to whom, as a row of this module's tables holds it."""
        return {
            "patient_pseudonym": pseudonym,
            "clinic_id": item.clinic_id,
            "practitioner_token": self._token(item.practitioner_id)
            if item.practitioner_id
            else None,
        }

    def whom(self, window: Window) -> tuple[str, str | bytes | None]:
        """To whom ``window`` is open, as ``clear`` tells it of a stored relationship."""
        token = self._token(window.practitioner_id) if window.practitioner_id else None
        return _whom(window.clinic_id, token)

    def maker(self, principal: str | None) -> bytes | None:
        """The ``granted_by`` token of ``principal`` (keyed: the table names no one)."""
        return self._token(principal) if principal else None

    def makers(self, connection: Connection, practitioner_id: str) -> frozenset[bytes]:
        """The ``granted_by`` tokens of every staff login naming ``practitioner_id``: one
        person's (``StaffAccounts.same_person``), whichever of their logins wrote it."""
        return frozenset(
            self._token(f"staff:{username}")
            for username in connection.execute(
                select(staff_account.c.username).where(
                    staff_account.c.practitioner_id == practitioner_id
                )
            ).scalars()
        )

    def rows(
        self,
        source_row_id: int,
        pseudonym: str,
        relationships: Iterable[Window],
        made_by: bytes | None = None,
    ) -> list[dict[str, Any]]:
        """The rows ``add`` would insert, for ``add_rows`` to insert later in the same
        transaction (a bulk load by the system: nothing in it reads them back)."""
        rows = [
            {
                **self._party(pseudonym, item),
                "source_row_id": source_row_id,
                "valid_from_us": item.valid_from_us,
                "valid_until_us": item.valid_until_us,
                "granted_by": made_by,
            }
            for item in relationships
        ]
        return [{**row, "seal": self.seal(row)} for row in rows]

    def add_rows(self, connection: Connection, rows: list[dict[str, Any]]) -> None:
        """Inside the write's transaction: insert rows made by ``rows``, in one statement."""
        if rows:
            with self._lock:
                self._answers.clear()
            driver_executemany(connection, _INSERT, rows)

    def _whom(
        self, clinic_ids: frozenset[str], practitioner_id: str | None
    ) -> ColumnElement[bool] | None:
        """Rows opened to one of ``clinic_ids`` or to ``practitioner_id``, at any time
        (None: to no one)."""
        who: list[ColumnElement[bool]] = []
        if clinic_ids:
            who.append(care_relationship.c.clinic_id.in_(sorted(clinic_ids)))
        if practitioner_id:
            who.append(care_relationship.c.practitioner_token == self._token(practitioner_id))
        return or_(*who) if who else None

    def _matches(
        self, clinic_ids: frozenset[str], practitioner_id: str | None, now_us: int
    ) -> ColumnElement[bool]:
        whom = self._whom(clinic_ids, practitioner_id)
        if whom is None:
            return care_relationship.c.source_row_id.is_(None)  # matches nothing
        return (
            whom
            & (care_relationship.c.valid_from_us <= now_us)
            & (care_relationship.c.valid_until_us >= now_us)
        )

    def exists(
        self,
        pseudonym: str,
        clinic_ids: frozenset[str],
        practitioner_id: str | None,
        now_us: int,
        connection: Connection | None = None,
        reading: Connection | None = None,
    ) -> bool:
        """Whether a care relationship holds now. ``connection``: a write's transaction
        (facts it wrote count; no cache). ``reading``: a read transaction the caller
        already holds, used if the answer is not cached."""
        query = _exists(len(clinic_ids))
        if connection is not None:
            params = self._params(pseudonym, clinic_ids, practitioner_id, now_us)
            return self._any_genuine(driver_all(connection, query, params))
        key = (pseudonym, clinic_ids, practitioner_id)
        moment = time.monotonic()
        with self._lock:
            cached = self._answers.get(key)
        if cached is not None and moment - cached[0] < self.cache_seconds:
            return cached[1]
        params = self._params(pseudonym, clinic_ids, practitioner_id, now_us)
        if reading is not None:
            answer = self._any_genuine(driver_all(reading, query, params))
        else:
            with read_transaction(self.engine) as fresh:
                answer = self._any_genuine(driver_all(fresh, query, params))
        with self._lock:
            if len(self._answers) > 50_000:
                self._answers.clear()
            self._answers[key] = (moment, answer)
        return answer

    def _any_genuine(self, rows: list[tuple[Any, ...]]) -> bool:
        names = (*SEALED_COLUMNS, "seal")
        return any(self.genuine(dict(zip(names, row, strict=True))) for row in rows)

    def ever(self, pseudonym: str, clinic_ids: frozenset[str], practitioner_id: str | None) -> bool:
        """Whether a care relationship with the patient was ever opened to one of
        ``clinic_ids`` or to ``practitioner_id`` (running, run out or not yet begun), by
        a record still standing or by a care team or referral since ended (``vouched``):
        what it showed is no proof of presence (``gate.registration``)."""
        whom = self._whom(clinic_ids, practitioner_id)
        if whom is None:
            return False
        vouched: list[ColumnElement[bool]] = (
            [care_vouched.c.clinic_id.in_(sorted(clinic_ids))] if clinic_ids else []
        )
        if practitioner_id:
            vouched.append(care_vouched.c.practitioner_token == self._token(practitioner_id))
        with read_transaction(self.engine) as connection:
            found = connection.execute(
                select(care_relationship.c.source_row_id)
                .where(care_relationship.c.patient_pseudonym == pseudonym, whom)
                .limit(1)
            ).first()
            if found is None:
                found = connection.execute(
                    select(care_vouched.c.vouched_id)
                    .where(care_vouched.c.patient_pseudonym == pseudonym, or_(*vouched))
                    .limit(1)
                ).first()
        return found is not None

    def _params(
        self, pseudonym: str, clinic_ids: frozenset[str], practitioner_id: str | None, now_us: int
    ) -> dict[str, object]:
        return {
            "pseudonym": pseudonym,
            **{f"clinic_{n}": clinic for n, clinic in enumerate(sorted(clinic_ids))},
            # No practitioner: a token no row has (rows hold 32-byte HMACs or NULL).
            "token": self._token(practitioner_id) if practitioner_id else b"",
            "now": now_us,
        }

    def patients(self, clinic_ids: frozenset[str], practitioner_id: str | None, now_us: int) -> Any:
        """A subquery of the pseudonyms the clinician has a care relationship with now."""
        return select(care_relationship.c.patient_pseudonym).where(
            self._matches(clinic_ids, practitioner_id, now_us)
        )
