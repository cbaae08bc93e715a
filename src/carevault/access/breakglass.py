"""Break the glass: a clinician's time-limited access to one patient outside a care
relationship, with a stated reason, queued for the privacy officer's review.

Each grant is sealed (an HMAC of what it opens, to whom and when, under a key derived
from the index key, which the database does not hold): someone who may write to the
database but holds no key, who inserts a grant row for a colleague's account, or moves a
grant to another patient or lengthens it, opens nothing (adversary round 70: a forged row
let Tuen Mun's doctor read Tsuen Wan's patient, and would have explained the read to the
detectors). A grant whose row does not match its seal is not honoured anywhere (a read,
a search, the detectors' explanation, PHI-offline's emergency access), and is reported
once (``altered``) for the ledger and an officer. Grants from before sealing began are
sealed as they stand at the first start after it (``seal_unsealed``, noted beside the
keyring: ``all_sealed``)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, func, insert, select, update

from carevault.access.tables import break_glass, staff_account
from carevault.clock import Clock, to_micros, utc_now
from carevault.db import lock_until_commit, read_transaction, write_transaction
from carevault.domain.roles import BreakGlassReason
from carevault.keys.anchors import AlteredRows, seal_fields, seal_matches, seal_unsealed
from carevault.keys.envelope import Envelope
from carevault.keys.service import KeyService

BREAK_GLASS_KEY_ID = "break-glass"
MAX_TEXT = 1000
#: A justification the privacy officer can judge: a sentence, not a word ("covering").
MIN_TEXT = 20
MIN_WORDS = 3
#: Grants one account may open in an hour. Breaking the glass is for the patient in
#: front of you; a clinician who opens more than this in an hour is sweeping records,
#: and further grants are refused (and recorded as refused) until the hour has passed.
#: The detectors alert well before (``detect.glass``: more than 5 distinct patients an
#: hour, high from 10); this is the hard stop behind them.
MAX_GRANTS_PER_HOUR = 20
HOUR_US = 3_600_000_000
#: Why a grant is refused (an officer's review or approval) whose row does not match
#: its seal.
GRANT_ALTERED = "break-the-glass grant altered in the database"

log = logging.getLogger("carevault.access")


class BreakGlassError(ValueError):
    pass


class TooManyGrants(BreakGlassError):
    """The account has opened ``MAX_GRANTS_PER_HOUR`` grants in the last hour."""


@dataclass(frozen=True)
class Grant:
    grant_id: str
    account_id: str
    patient_pseudonym: str
    reason: BreakGlassReason
    granted_us: int
    expires_us: int
    reviewed: bool
    review_outcome: str | None
    emergency: bool = False
    approved: bool = False


def grant_seal(
    key: bytes,
    grant_id: str,
    account_id: str,
    patient_pseudonym: str,
    reason_code: str,
    granted_us: int,
    expires_us: int,
    emergency: bool,
    approved: bool,
) -> bytes:
    """The seal of what a grant opens: to whom, which patient, why (the code), from when
    to when, and whether it waits for an officer's approval."""
    fields: list[object] = [
        grant_id,
        account_id,
        patient_pseudonym,
        reason_code,
        granted_us,
        expires_us,
        emergency,
        approved,
    ]
    return seal_fields(key, "carevault-grant/1", fields)


def _grant(row: object) -> Grant:
    m = row._mapping  # type: ignore[attr-defined]
    return Grant(
        grant_id=m["grant_id"],
        account_id=m["account_id"],
        patient_pseudonym=m["patient_pseudonym"],
        reason=BreakGlassReason(m["reason_code"]),
        granted_us=m["granted_us"],
        expires_us=m["expires_us"],
        reviewed=m["reviewed_us"] is not None,
        review_outcome=m["review_outcome"],
        emergency=bool(m["emergency"]),
        approved=m["approved_us"] is not None,
    )


class BreakGlass:
    def __init__(
        self,
        engine: Engine,
        keys: KeyService | None,
        envelope: Envelope,
        minutes: int,
        clock: Clock = utc_now,
    ) -> None:
        self.engine = engine
        self.keys = keys
        self.envelope = envelope
        self.minutes = minutes
        self.clock = clock
        #: The key grants are sealed with (``grant_seal``; None with encryption off),
        #: whether every grant has been sealed (so that one without a seal was stripped of
        #: it), and who is told of a grant found altered: the composition root sets them.
        self.seal_key: bytes | None = None
        self.all_sealed = False
        self.altered = AlteredRows(log, "break-the-glass grant", "not honoured")

    # --- the grant's seal --------------------------------------------------------------

    def _seal(
        self,
        grant_id: str,
        account_id: str,
        pseudonym: str,
        reason_code: str,
        granted_us: int,
        expires_us: int,
        emergency: bool,
        approved: bool,
    ) -> bytes | None:
        if self.seal_key is None:
            return None
        return grant_seal(
            self.seal_key,
            grant_id,
            account_id,
            pseudonym,
            reason_code,
            granted_us,
            expires_us,
            emergency,
            approved,
        )

    def _row_seal(self, row: Any) -> bytes | None:
        return self._seal(
            row.grant_id,
            row.account_id,
            row.patient_pseudonym,
            row.reason_code,
            # As stored, never coerced: a number written as text ("1_796…") would seal
            # as the number and compare in SQL as text, above every number.
            row.granted_us,
            row.expires_us,
            bool(row.emergency),
            row.approved_us is not None,
        )

    def genuine(self, row: Any) -> bool:
        """Whether a ``break_glass`` row (all its columns) is as CareVault wrote it
        (always, with no key); one that is not is reported once."""
        expected = self._row_seal(row)
        if expected is None:
            return True
        ok = seal_matches(row.seal, expected, self.all_sealed)
        if not ok:
            self.altered.tell(str(row.grant_id))
        return ok

    def _genuine_rows(self, rows: Iterable[Any]) -> list[Any]:
        return [row for row in rows if self.genuine(row)]

    def seal_unsealed(self) -> int:
        """Seal every grant that has no seal, as it stands (once, when sealing begins);
        returns how many."""
        if self.seal_key is None:
            return 0
        return seal_unsealed(self.engine, break_glass, [break_glass.c.grant_id], self._row_seal)

    # --- grants ------------------------------------------------------------------------

    def _key(self, purpose: str) -> bytes | None:
        if self.keys is None:
            return None
        return self.keys.ensure_data_key(
            BREAK_GLASS_KEY_ID, "audit", principal="system:access", purpose=purpose
        )

    def grant(
        self,
        account_id: str,
        pseudonym: str,
        reason: str,
        text: str,
        *,
        emergency: bool = False,
        practitioner_id: str | None = None,
    ) -> Grant:
        """Open one patient's record to a clinician for a while; an ``emergency`` grant
        (asked while patient data is offline) waits for a privacy officer's approval.

        ``BreakGlassError`` (nothing opened) for an unknown reason or a justification
        shorter than ``MIN_WORDS`` words and ``MIN_TEXT`` characters; ``TooManyGrants``
        once the account has opened ``MAX_GRANTS_PER_HOUR`` in the last hour (emergency
        requests included: each is a grant asked for). With ``practitioner_id``, the grants
        of every account naming that practitioner count: one person's twenty, not twenty
        a login (adversary round 58). The gate records either refusal."""
        try:
            code = BreakGlassReason(reason)
        except ValueError:
            choices = ", ".join(r.value for r in BreakGlassReason)
            raise BreakGlassError(f"the reason must be one of: {choices}") from None
        text = text.strip()
        if len(text) < MIN_TEXT or len(text.split()) < MIN_WORDS or len(text) > MAX_TEXT:
            raise BreakGlassError(
                f"say why in words the privacy officer can judge: at least {MIN_WORDS} words "
                f"and {MIN_TEXT} characters, at most {MAX_TEXT} characters"
            )
        grant_id = f"bg-{secrets.token_hex(8)}"
        now_us = to_micros(self.clock())
        sealed = self.envelope.seal(
            self._key("break-glass"), f"carevault-bg|{grant_id}".encode(), text.encode()
        )
        with write_transaction(self.engine) as connection:
            # One person's grants are counted one at a time: on PostgreSQL grants asked
            # for together each counted the others' out and opened past the cap
            # (adversary round 66).
            lock_until_commit(connection, f"carevault-break-glass:{practitioner_id or account_id}")
            recent = connection.execute(
                select(func.count())
                .select_from(break_glass)
                .where(
                    _whose(account_id, practitioner_id),
                    break_glass.c.granted_us > now_us - HOUR_US,
                )
            ).scalar_one()
            if recent >= MAX_GRANTS_PER_HOUR:
                raise TooManyGrants(
                    f"{MAX_GRANTS_PER_HOUR} grants in the last hour: no more are opened for "
                    "this account until the hour has passed; ask the privacy officer"
                )
            expires_us = now_us + self.minutes * 60_000_000
            connection.execute(
                insert(break_glass).values(
                    grant_id=grant_id,
                    account_id=account_id,
                    patient_pseudonym=pseudonym,
                    reason_code=code.value,
                    reason_sealed=sealed,
                    granted_us=now_us,
                    expires_us=expires_us,
                    reviewed_us=None,
                    reviewed_by=None,
                    review_outcome=None,
                    emergency=emergency,
                    approved_by=None,
                    approved_us=None,
                    seal=self._seal(
                        grant_id,
                        account_id,
                        pseudonym,
                        code.value,
                        now_us,
                        expires_us,
                        emergency,
                        False,
                    ),
                )
            )
        return self.get(grant_id)

    def get(self, grant_id: str) -> Grant:
        with read_transaction(self.engine) as connection:
            row = connection.execute(
                select(break_glass).where(break_glass.c.grant_id == grant_id)
            ).first()
        if row is None:
            raise BreakGlassError(f"no break-the-glass grant {grant_id}")
        return _grant(row)

    def reason_text(self, grant_id: str) -> str:
        with read_transaction(self.engine) as connection:
            sealed = connection.execute(
                select(break_glass.c.reason_sealed).where(break_glass.c.grant_id == grant_id)
            ).scalar_one()
        return self.envelope.open(
            self._key("break-glass-review"),
            f"carevault-bg|{grant_id}".encode(),
            sealed,
            where=f"break-glass grant {grant_id}",
        ).decode()

    def _active(self, account_id: str, now_us: int) -> ColumnElement[bool]:
        return (
            (break_glass.c.account_id == account_id)
            & (break_glass.c.granted_us <= now_us)
            & (break_glass.c.expires_us > now_us)
            & (break_glass.c.emergency.is_(False) | break_glass.c.approved_us.is_not(None))
        )

    def active(
        self, account_id: str, pseudonym: str, now_us: int, connection: Connection | None = None
    ) -> Grant | None:
        """The account's grant for this patient now, if any. ``connection``: a transaction
        the caller holds (a read's or a write's), used instead of a second connection: a
        request that held one connection while waiting for another could, with every
        connection of the pool so held, wait out the pool's timeout."""
        statement = (
            select(break_glass)
            .where(self._active(account_id, now_us), break_glass.c.patient_pseudonym == pseudonym)
            .order_by(break_glass.c.expires_us.desc())
        )
        if connection is not None:
            rows = connection.execute(statement).all()
        else:
            with read_transaction(self.engine) as fresh:
                rows = fresh.execute(statement).all()
        found = self._genuine_rows(rows)
        return _grant(found[0]) if found else None

    def ever_opened(
        self, account_id: str, pseudonym: str, now_us: int, practitioner_id: str | None = None
    ) -> bool:
        """Whether the account has ever had a grant open for this patient (running or run
        out): what it showed them (an HKID, a birth date) is no proof that the patient
        stood in front of them (``gate.registration``). With ``practitioner_id``, a grant
        to any account naming that practitioner counts: one person's other login."""
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(break_glass).where(
                    _whose(account_id, practitioner_id),
                    break_glass.c.patient_pseudonym == pseudonym,
                    break_glass.c.granted_us <= now_us,
                    break_glass.c.emergency.is_(False) | break_glass.c.approved_us.is_not(None),
                )
            ).all()
        return any(self.genuine(row) for row in rows)

    def patients(self, account_id: str, now_us: int) -> list[str]:
        """The pseudonyms of the patients this account has broken the glass for, now (a
        list, not a subquery: each grant's seal is checked here, which SQL cannot do; an
        account opens at most ``MAX_GRANTS_PER_HOUR`` an hour)."""
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(break_glass).where(self._active(account_id, now_us))
            ).all()
        return sorted({str(row.patient_pseudonym) for row in self._genuine_rows(rows)})

    def queue(self) -> list[Grant]:
        """Grants not yet reviewed, oldest first."""
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(break_glass)
                .where(break_glass.c.reviewed_us.is_(None))
                .order_by(break_glass.c.granted_us)
            ).all()
        return [_grant(row) for row in rows]

    def review(self, grant_id: str, reviewer_id: str, outcome: str) -> Grant:
        if outcome not in ("justified", "unjustified"):
            raise BreakGlassError("a review outcome is 'justified' or 'unjustified'")
        self._refuse_altered(grant_id)
        with write_transaction(self.engine) as connection:
            changed = connection.execute(
                update(break_glass)
                .where(break_glass.c.grant_id == grant_id, break_glass.c.reviewed_us.is_(None))
                .values(
                    reviewed_us=to_micros(self.clock()),
                    reviewed_by=reviewer_id,
                    review_outcome=outcome,
                )
            ).rowcount
        if changed != 1:
            raise BreakGlassError(f"grant {grant_id} does not exist or was already reviewed")
        return self.get(grant_id)

    def approve(self, grant_id: str, approver_id: str) -> Grant:
        """A privacy officer approves an emergency grant; it runs from now."""
        grant = self.get(grant_id)
        if not grant.emergency or grant.approved:
            raise BreakGlassError(f"grant {grant_id} is not an emergency request awaiting approval")
        if grant.account_id == approver_id:
            raise BreakGlassError("a grant must be approved by someone other than the requester")
        now_us = to_micros(self.clock())
        expires_us = now_us + self.minutes * 60_000_000
        with write_transaction(self.engine) as connection:
            row = connection.execute(
                select(break_glass).where(
                    break_glass.c.grant_id == grant_id, break_glass.c.approved_us.is_(None)
                )
            ).first()
            # An approval seals the grant anew: one inserted in the database, approved,
            # would pass for genuine.
            if row is None or not self.genuine(row):
                raise BreakGlassError(f"grant {grant_id}: {GRANT_ALTERED}; not approved")
            connection.execute(
                update(break_glass)
                .where(break_glass.c.grant_id == grant_id, break_glass.c.approved_us.is_(None))
                .values(
                    approved_by=approver_id,
                    approved_us=now_us,
                    granted_us=now_us,
                    expires_us=expires_us,
                    seal=self._seal(
                        row.grant_id,
                        row.account_id,
                        row.patient_pseudonym,
                        row.reason_code,
                        now_us,
                        expires_us,
                        True,
                        True,
                    ),
                )
            )
        return self.get(grant_id)

    def _refuse_altered(self, grant_id: str) -> None:
        """``BreakGlassError`` for a grant whose row does not match its seal."""
        with read_transaction(self.engine) as connection:
            row = connection.execute(
                select(break_glass).where(break_glass.c.grant_id == grant_id)
            ).first()
        if row is not None and not self.genuine(row):
            raise BreakGlassError(f"grant {grant_id}: {GRANT_ALTERED}")

    def emergency_active(self, account_id: str, pseudonym: str, now_us: int) -> bool:
        """An approved emergency grant lets this account past PHI-offline for this patient."""
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(break_glass).where(
                    self._active(account_id, now_us),
                    break_glass.c.patient_pseudonym == pseudonym,
                    break_glass.c.emergency.is_(True),
                )
            ).all()
        return any(self.genuine(row) for row in rows)

    def pending(self) -> list[Grant]:
        """Emergency requests awaiting approval, oldest first."""
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(break_glass)
                .where(break_glass.c.emergency.is_(True), break_glass.c.approved_us.is_(None))
                .order_by(break_glass.c.granted_us)
            ).all()
        return [_grant(row) for row in rows]


def _whose(account_id: str, practitioner_id: str | None) -> ColumnElement[bool]:
    """Grants of the account, and with ``practitioner_id`` of every account naming that
    practitioner (one person's logins)."""
    whose: ColumnElement[bool] = break_glass.c.account_id == account_id
    if practitioner_id:
        whose = whose | break_glass.c.account_id.in_(
            select(staff_account.c.account_id).where(
                staff_account.c.practitioner_id == practitioner_id
            )
        )
    return whose
