"""Who is kin to whom, from keyed blind tokens only: which patients share a member of
staff's surname, home or building, which patient records are staff themselves
(co-workers), and which is the member's own.

HR (through a privacy officer, ``carevault alerts identify``) records a member's
surname, home address and HKID number; each is normalised (``carevault.fhir.kinship``)
and kept only as the same keyed HMAC a Patient's record gets when it is written
(``patient_kin``). The HKID token links the member to their own patient record, if
they are registered as a patient: its surname, home and building count as theirs too,
and every such record is a co-worker's for everyone else. Nothing is decrypted: the
detectors compare tokens, one query per batch of entries.

A patient is kin by the tokens their record carries now and by those a write took away
within ``KIN_WINDOW_US`` of the entry (``patient_kin_replaced``): a receptionist who
first moves her household member's record to another address, renames a namesake or
changes a co-worker's HKID number, and then opens it, is judged as if she had not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Column, Connection, Engine, Select, delete, func, insert, select

from carevault.access.tables import staff_account
from carevault.db import read_transaction, write_transaction
from carevault.detect.model import DAY_US, Access
from carevault.detect.profile import KEPT_DAYS
from carevault.detect.tables import detect_staff_kin
from carevault.fhir.kinship import (
    BUILDING,
    HKID,
    HOUSEHOLD,
    SURNAME,
    address_terms,
    hkid_term,
    surname_term,
)
from carevault.vault.tables import patient_kin, patient_kin_replaced, resource_head

CHUNK = 500
#: Kinds a member shares with a patient, as the detectors name them.
OWN_RECORD = "own-record"
CO_WORKER = "co-worker"
PLACES = (SURNAME, HOUSEHOLD, BUILDING)
#: How far the snooping detector looks back: a pick of kin is judged against the counts
#: of its own day, kept while the account is in one of the ``KEPT_DAYS`` days after it
#: (``detect.profile``); its grace is at most a day and a rebuilt engine replays a day
#: and an hour. A token a write took away still relates the patient to an entry made
#: up to this long after (and to any entry before it: the patient carried it then).
KIN_WINDOW_US = (KEPT_DAYS + 1) * DAY_US


@dataclass(frozen=True)
class KinSet:
    #: account ("staff:<username>") → kind → tokens (theirs and their own record's).
    staff: dict[str, dict[str, frozenset[bytes]]] = field(default_factory=dict)
    #: account → pseudonyms of their own patient records.
    own: dict[str, frozenset[str]] = field(default_factory=dict)
    #: pseudonym of a patient who is staff → the accounts that are that person.
    coworkers: dict[str, frozenset[str]] = field(default_factory=dict)
    #: (account, kind) → the share of all patients carrying the member's surname
    #: (or living in their building): what chance alone would give.
    shares: dict[tuple[str, str], float] = field(default_factory=dict)


class Kinship:
    """``token(kind, term)`` is the vault's kinship token (``vault.writer.kin_token``)."""

    def __init__(
        self,
        engine: Engine,
        token: Callable[[str, str], bytes],
        now_us: Callable[[], int],
        refresh_seconds: float = 5.0,
    ) -> None:
        self.engine = engine
        self.token = token
        self.now_us = now_us
        self.refresh_seconds = refresh_seconds
        #: Tokens a write took away count for entries up to this long after it.
        self.window_us = KIN_WINDOW_US
        self._read_at = float("-inf")
        self._value = KinSet()
        self._lock = threading.Lock()

    # --- what HR records ---------------------------------------------------------------------

    def identify(
        self,
        account: str,
        by: str,
        *,
        surname: str | None = None,
        address_lines: Sequence[str] = (),
        hkid: str | None = None,
    ) -> list[str]:
        """Replace what is kept of ``account`` (``staff:<username>``) by the tokens of the
        values given; returns the kinds kept. ValueError (naming the field, never the
        value) for a value that normalises to nothing."""
        terms: list[tuple[str, str]] = []
        if surname is not None:
            term = surname_term(surname)
            if term is None:
                raise ValueError("surname: no letters in it")
            terms.append((SURNAME, term))
        if address_lines:
            household, building = address_terms(address_lines)
            if household is None:
                raise ValueError("address: no words in it")
            terms.append((HOUSEHOLD, household))
            if building is not None:
                terms.append((BUILDING, building))
        if hkid is not None:
            number = hkid_term(hkid)
            if number is None:
                raise ValueError("hkid: not an HKID number")
            terms.append((HKID, number))
        now = self.now_us()
        with write_transaction(self.engine) as connection:
            connection.execute(
                delete(detect_staff_kin).where(detect_staff_kin.c.account == account)
            )
            if terms:
                connection.execute(
                    insert(detect_staff_kin),
                    [
                        {
                            "account": account,
                            "kind": kind,
                            "token": self.token(kind, term),
                            "set_by": by,
                            "set_us": now,
                        }
                        for kind, term in terms
                    ],
                )
        self._read_at = float("-inf")
        return [kind for kind, _ in terms]

    def current(self) -> KinSet:
        with self._lock:
            if time.monotonic() - self._read_at >= self.refresh_seconds:
                self._value = self._load()
                self._read_at = time.monotonic()
            return self._value

    def _load(self) -> KinSet:
        staff: dict[str, dict[str, set[bytes]]] = {}
        with read_transaction(self.engine) as connection:
            for account, kind, token in connection.execute(
                select(
                    detect_staff_kin.c.account, detect_staff_kin.c.kind, detect_staff_kin.c.token
                )
            ):
                staff.setdefault(account, {}).setdefault(kind, set()).add(bytes(token))
            if not staff:
                return KinSet()
            _share_by_person(connection, staff)
            by_hkid: dict[bytes, set[str]] = {}
            for account, kinds in staff.items():
                for token in kinds.get(HKID, ()):
                    by_hkid.setdefault(token, set()).add(account)
            own: dict[str, set[str]] = {}
            coworkers: dict[str, set[str]] = {}
            replaced = patient_kin_replaced
            # A record whose HKID number a write changed within the window is still the
            # member's own (a co-worker's): changing it first hides nothing.
            held = [
                *_rows(
                    connection,
                    select(patient_kin.c.patient_pseudonym, patient_kin.c.token).where(
                        patient_kin.c.kind == HKID
                    ),
                    patient_kin.c.token,
                    list(by_hkid),
                ),
                *_rows(
                    connection,
                    select(replaced.c.patient_pseudonym, replaced.c.token).where(
                        replaced.c.kind == HKID,
                        replaced.c.replaced_us >= self.now_us() - self.window_us,
                    ),
                    replaced.c.token,
                    list(by_hkid),
                ),
            ]
            for pseudonym, token in held:
                for account in by_hkid.get(bytes(token), ()):
                    own.setdefault(account, set()).add(pseudonym)
                    coworkers.setdefault(pseudonym, set()).add(account)
            for pseudonym, kind, token in _rows(
                connection,
                select(
                    patient_kin.c.patient_pseudonym, patient_kin.c.kind, patient_kin.c.token
                ).where(patient_kin.c.kind.in_(PLACES)),
                patient_kin.c.patient_pseudonym,
                sorted(coworkers),
            ):
                for account in coworkers[pseudonym]:
                    staff[account].setdefault(kind, set()).add(bytes(token))
            shares = self._shares(connection, staff)
        return KinSet(
            {a: {k: frozenset(t) for k, t in kinds.items()} for a, kinds in staff.items()},
            {a: frozenset(p) for a, p in own.items()},
            {p: frozenset(a) for p, a in coworkers.items()},
            shares,
        )

    @staticmethod
    def _shares(
        connection: Connection, staff: dict[str, dict[str, set[bytes]]]
    ) -> dict[tuple[str, str], float]:
        patients = connection.execute(
            select(func.count()).where(
                resource_head.c.resource_type == "Patient", resource_head.c.deleted.is_(False)
            )
        ).scalar_one()
        if not patients:
            return {}
        wanted = sorted({t for kinds in staff.values() for k in (SURNAME, BUILDING)
                         for t in kinds.get(k, ())})  # fmt: skip
        counts: dict[bytes, int] = {}
        for token, count in _rows(
            connection,
            select(patient_kin.c.token, func.count(func.distinct(patient_kin.c.patient_pseudonym)))
            .where(patient_kin.c.kind.in_((SURNAME, BUILDING)))
            .group_by(patient_kin.c.token),
            patient_kin.c.token,
            wanted,
        ):
            counts[bytes(token)] = counts.get(bytes(token), 0) + int(count)
        shares: dict[tuple[str, str], float] = {}
        for account, kinds in staff.items():
            for kind in (SURNAME, BUILDING):
                carried = sum(counts.get(token, 0) for token in kinds.get(kind, ()))
                if kinds.get(kind):
                    shares[(account, kind)] = min(1.0, max(1, carried) / patients)
        return shares

    # --- per batch -------------------------------------------------------------------------

    def relate(self, accesses: Sequence[Access]) -> list[Access]:
        """``accesses`` with ``kin`` set where the patient is kin to the account."""
        known = self.current()
        wanted = [
            a
            for a in accesses
            if a.attempted
            and a.patient_pseudonym
            and (a.account or "").startswith("staff:")
            and ((a.account or "") in known.staff or a.patient_pseudonym in known.coworkers)
        ]
        if not wanted:
            return list(accesses)
        tokens: dict[str, dict[str, set[bytes]]] = {}
        replaced: dict[str, list[tuple[str, bytes, int]]] = {}
        pseudonyms = sorted({a.patient_pseudonym or "" for a in wanted})
        since_us = min(a.at_us for a in wanted) - self.window_us
        table = patient_kin_replaced
        with read_transaction(self.engine) as connection:
            for pseudonym, kind, token in _rows(
                connection,
                select(
                    patient_kin.c.patient_pseudonym, patient_kin.c.kind, patient_kin.c.token
                ).where(patient_kin.c.kind.in_(PLACES)),
                patient_kin.c.patient_pseudonym,
                pseudonyms,
            ):
                tokens.setdefault(pseudonym, {}).setdefault(kind, set()).add(bytes(token))
            for pseudonym, kind, token, replaced_us in _rows(
                connection,
                select(
                    table.c.patient_pseudonym, table.c.kind, table.c.token, table.c.replaced_us
                ).where(table.c.kind.in_(PLACES), table.c.replaced_us >= since_us),
                table.c.patient_pseudonym,
                pseudonyms,
            ):
                replaced.setdefault(pseudonym, []).append((kind, bytes(token), int(replaced_us)))
        # By identity: ``access in wanted`` compared whole entries field by field, once
        # per entry against every wanted one (quadratic in a batch).
        asked = {id(access) for access in wanted}
        related: list[Access] = []
        for access in accesses:
            kinds = (
                _kinds(access, known, self._held(access, tokens, replaced))
                if id(access) in asked
                else ()
            )
            related.append(replace(access, kin=kinds) if kinds else access)
        return related

    def _held(
        self,
        access: Access,
        tokens: dict[str, dict[str, set[bytes]]],
        replaced: dict[str, list[tuple[str, bytes, int]]],
    ) -> dict[str, set[bytes]]:
        """The place tokens of the patient of ``access`` (kind → tokens): those their
        record carries now and those a write took away at most the window before the
        entry, or after it (the patient carried them when it was made)."""
        pseudonym = access.patient_pseudonym or ""
        current = tokens.get(pseudonym, {})
        earlier = [
            (kind, token)
            for kind, token, replaced_us in replaced.get(pseudonym, ())
            if replaced_us >= access.at_us - self.window_us
        ]
        if not earlier:
            return current
        held = {kind: set(found) for kind, found in current.items()}
        for kind, token in earlier:
            held.setdefault(kind, set()).add(token)
        return held

    def prune(self, connection: Connection, oldest_us: int) -> int:
        """Forget the tokens writes took away that no entry made at or after ``oldest_us``
        can still be related to (the detection engine calls this in its write, with the
        oldest entry it may still judge); returns how many rows went."""
        table = patient_kin_replaced
        gone = connection.execute(
            delete(table).where(table.c.replaced_us < oldest_us - self.window_us)
        )
        return int(gone.rowcount or 0)


def _share_by_person(connection: Connection, staff: dict[str, dict[str, set[bytes]]]) -> None:
    """Give what HR recorded of one login to every login of its person (accounts naming
    the same practitioner, ``StaffAccounts.same_person``): their home, surname and own
    record are the person's, whichever login opens them (adversary round 57: a doctor
    identified on their physician login opened their spouse's record unseen, and their
    own as "a co-worker's", with their nurse login)."""
    logins: dict[str, set[str]] = {}
    for username, practitioner in connection.execute(
        select(staff_account.c.username, staff_account.c.practitioner_id).where(
            staff_account.c.practitioner_id.is_not(None)
        )
    ):
        logins.setdefault(str(practitioner), set()).add(f"staff:{username}")
    for people in logins.values():
        known = [staff[account] for account in sorted(people) if account in staff]
        if not known or len(people) < 2:
            continue
        merged: dict[str, set[bytes]] = {}
        for kinds in known:
            for kind, tokens in kinds.items():
                merged.setdefault(kind, set()).update(tokens)
        for account in people:
            staff[account] = {kind: set(tokens) for kind, tokens in merged.items()}


def _kinds(access: Access, known: KinSet, theirs: dict[str, set[bytes]]) -> tuple[str, ...]:
    account, pseudonym = access.account or "", access.patient_pseudonym or ""
    if pseudonym in known.own.get(account, ()):
        return (OWN_RECORD,)
    found: list[str] = []
    if known.coworkers.get(pseudonym, frozenset()) - {account}:
        found.append(CO_WORKER)
    mine = known.staff.get(account, {})
    shared = {kind for kind in PLACES if mine.get(kind, frozenset()) & theirs.get(kind, set())}
    if HOUSEHOLD in shared:
        shared.discard(BUILDING)
    found.extend(kind for kind in PLACES if kind in shared)
    return tuple(found)


def _rows(
    connection: Connection,
    statement: Select[Any],
    column: Column[Any],
    values: Iterable[object],
) -> Iterable[tuple[Any, ...]]:
    """``statement`` restricted to ``column IN values``, a chunk at a time."""
    ordered = list(values)
    for start in range(0, len(ordered), CHUNK):
        yield from connection.execute(
            statement.where(column.in_(ordered[start : start + CHUNK]))
        ).all()
