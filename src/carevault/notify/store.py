"""The notice table's reads and writes: each a short transaction of its own, so that a
state written here is durable before the job goes on (``sending`` before a send).

A notice becomes ``sent`` only in the transaction that also appends its
``notify:notice:sent`` ledger entry (``mark_sent``, ``settle_sent``): a kill at any
moment leaves both or neither, so every notice marked sent has exactly one entry."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, bindparam, func, insert, select, update

from carevault.db import read_transaction, write_transaction
from carevault.ledger.events import AuditEvent
from carevault.ledger.trail import AuditTrail
from carevault.notify.tables import notify_bounce, notify_clock, notify_job, notify_notice

#: States of a notice. ``sending``: a send may have happened; settled on restart.
PENDING, SENDING, SENT = "pending", "sending", "sent"
DECEASED, UNREACHABLE, MISSING = "deceased", "unreachable", "missing"
FINAL = frozenset({SENT, DECEASED, UNREACHABLE, MISSING})


@dataclass(frozen=True)
class NoticeRow:
    notice_key: str
    patient_id: str
    tier: str
    categories: tuple[str, ...]
    language: str
    recipient: str
    channel: str
    state: str
    attempts: int
    next_attempt_us: int
    last_error: str | None
    sent_us: int | None
    #: The keyed digest of the address its message went to (None for a letter).
    address_digest: str | None = None


def _leased_to_other(known: Any, owner: str | None, now_us: int) -> bool:
    holder, until = known[0], known[1]
    return bool(holder) and holder != owner and (until or 0) > now_us


def _row(mapping: object) -> NoticeRow:
    m = dict(mapping._mapping)  # type: ignore[attr-defined]
    return NoticeRow(
        notice_key=m["notice_key"],
        patient_id=m["patient_id"],
        tier=m["tier"],
        categories=tuple(json.loads(m["categories"])),
        language=m["language"],
        recipient=m["recipient"],
        channel=m["channel"],
        state=m["state"],
        attempts=m["attempts"],
        next_attempt_us=m["next_attempt_us"],
        last_error=m["last_error"],
        sent_us=m["sent_us"],
        address_digest=m.get("address_digest"),
    )


class NoticeStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def rows(self, incident_id: str, keys: Sequence[str] | None = None) -> dict[str, NoticeRow]:
        query = select(notify_notice).where(notify_notice.c.incident_id == incident_id)
        if keys is not None:
            query = query.where(notify_notice.c.notice_key.in_(list(keys)))
        with read_transaction(self.engine) as connection:
            return {row.notice_key: _row(row) for row in connection.execute(query)}

    def insert(self, rows: Iterable[dict[str, object]]) -> None:
        values = list(rows)
        if not values:
            return
        with write_transaction(self.engine) as connection:
            connection.execute(insert(notify_notice), values)

    def set_state(self, keys: Sequence[str], state: str, **values: object) -> None:
        if not keys:
            return
        with write_transaction(self.engine) as connection:
            connection.execute(
                update(notify_notice)
                .where(notify_notice.c.notice_key.in_(list(keys)))
                .values(state=state, **values)
            )

    def mark_sent(
        self, sent: Sequence[dict[str, object]], audit: AuditTrail, events: Sequence[AuditEvent]
    ) -> None:
        """Several notices ``sent`` in one transaction, with their ledger ``events``
        appended in it (both durable, or neither): each dict has ``key``, ``channel``,
        ``sent_us``, ``attempts``, ``address_digest`` and ``code_digest`` (that of the
        code in the message the channel accepted: the one code of it that verifies)."""
        if not sent:
            return
        statement = (
            update(notify_notice)
            .where(notify_notice.c.notice_key == bindparam("key"))
            .values(
                state=SENT,
                channel=bindparam("channel"),
                sent_us=bindparam("sent_us"),
                attempts=bindparam("attempts"),
                address_digest=bindparam("address_digest"),
                code_digest=bindparam("code_digest"),
                last_error=None,
            )
        )
        with write_transaction(self.engine) as connection:
            connection.execute(statement, list(sent))
            audit.record(events, connection)

    def settle_sent(
        self, keys: Sequence[str], sent_us: int, audit: AuditTrail, events: Sequence[AuditEvent]
    ) -> None:
        """Notices ``sent`` found so after a kill (the relay's journal holds them), with
        their ledger ``events`` in the same transaction."""
        if not keys:
            return
        with write_transaction(self.engine) as connection:
            connection.execute(
                update(notify_notice)
                .where(notify_notice.c.notice_key.in_(list(keys)))
                .values(state=SENT, sent_us=sent_us, last_error=None)
            )
            audit.record(events, connection)

    def in_state(self, incident_id: str, state: str) -> list[NoticeRow]:
        query = select(notify_notice).where(
            notify_notice.c.incident_id == incident_id, notify_notice.c.state == state
        )
        with read_transaction(self.engine) as connection:
            return [_row(row) for row in connection.execute(query)]

    def counts(self, incident_id: str) -> dict[tuple[str, str, str], int]:
        query = (
            select(
                notify_notice.c.state,
                notify_notice.c.channel,
                notify_notice.c.language,
                func.count(),
            )
            .where(notify_notice.c.incident_id == incident_id)
            .group_by(notify_notice.c.state, notify_notice.c.channel, notify_notice.c.language)
        )
        with read_transaction(self.engine) as connection:
            return {(r[0], r[1], r[2]): int(r[3]) for r in connection.execute(query)}

    def by_message(self, notice_keys: Sequence[str]) -> dict[str, NoticeRow]:
        query = select(notify_notice).where(notify_notice.c.notice_key.in_(list(notice_keys)))
        with read_transaction(self.engine) as connection:
            return {row.notice_key: _row(row) for row in connection.execute(query)}

    def by_code(self, digest: str) -> tuple[str, str, int | None, str | None] | None:
        """(state, channel, sent_us, address_digest) of the notice whose code has
        ``digest``; the address's digest is that of the email address or mobile number its
        message was sent to (None for a letter)."""
        query = select(
            notify_notice.c.state,
            notify_notice.c.channel,
            notify_notice.c.sent_us,
            notify_notice.c.address_digest,
        ).where(notify_notice.c.code_digest == digest)
        with read_transaction(self.engine) as connection:
            found = connection.execute(query).first()
        return (found[0], found[1], found[2], found[3]) if found else None

    # --- bounces ---------------------------------------------------------------------------

    def bounced(self, digests: Iterable[str]) -> set[str]:
        wanted = [d for d in digests if d]
        if not wanted:
            return set()
        query = select(notify_bounce.c.address_digest).where(
            notify_bounce.c.address_digest.in_(wanted)
        )
        with read_transaction(self.engine) as connection:
            return {row[0] for row in connection.execute(query)}

    def add_bounce(self, digest: str, channel: str, reason: str, at_us: int) -> None:
        with write_transaction(self.engine) as connection:
            known = connection.execute(
                select(notify_bounce.c.address_digest).where(
                    notify_bounce.c.address_digest == digest
                )
            ).first()
            if known is None:
                connection.execute(
                    insert(notify_bounce).values(
                        address_digest=digest, channel=channel, reason=reason[:200], at_us=at_us
                    )
                )

    # --- jobs and clocks -------------------------------------------------------------------

    def start_job(
        self,
        incident_id: str,
        tiers: Sequence[str],
        total: int,
        now_us: int,
        *,
        owner: str | None = None,
        lease_us: int = 0,
        alive: Callable[[str], bool] = lambda owner: True,
    ) -> bool:
        """Record the job's options and take its lease for ``owner``; False (nothing
        changed) while another owner's lease has not run out and ``alive`` says that
        owner may still be running."""
        with write_transaction(self.engine) as connection:
            known = connection.execute(
                select(notify_job.c.lease_owner, notify_job.c.lease_until_us)
                .where(notify_job.c.incident_id == incident_id)
                .with_for_update()
            ).first()
            if known is not None and _leased_to_other(known, owner, now_us) and alive(known[0]):
                return False
            values: dict[str, object] = {
                "tiers": ",".join(tiers), "total": total, "updated_us": now_us,
                "lease_owner": owner, "lease_until_us": now_us + lease_us if owner else None,
            }  # fmt: skip
            if known is None:
                connection.execute(
                    insert(notify_job).values(incident_id=incident_id, started_us=now_us, **values)
                )
            else:
                connection.execute(
                    update(notify_job)
                    .where(notify_job.c.incident_id == incident_id)
                    .values(finished_us=None, **values)
                )
        return True

    def renew_lease(self, incident_id: str, owner: str, now_us: int, lease_us: int) -> bool:
        """Extend ``owner``'s lease; False if it is no longer theirs."""
        with write_transaction(self.engine) as connection:
            renewed = connection.execute(
                update(notify_job)
                .where(notify_job.c.incident_id == incident_id, notify_job.c.lease_owner == owner)
                .values(lease_until_us=now_us + lease_us, updated_us=now_us)
            ).rowcount
        return bool(renewed)

    def release_lease(self, incident_id: str, owner: str) -> None:
        with write_transaction(self.engine) as connection:
            connection.execute(
                update(notify_job)
                .where(notify_job.c.incident_id == incident_id, notify_job.c.lease_owner == owner)
                .values(lease_owner=None, lease_until_us=None)
            )

    def running(self, incident_id: str, now_us: int) -> bool:
        """Whether some process holds the job's lease now."""
        job = self.job(incident_id)
        return bool(job and job["lease_owner"] and (job["lease_until_us"] or 0) > now_us)

    def finish_job(self, incident_id: str, now_us: int) -> None:
        with write_transaction(self.engine) as connection:
            connection.execute(
                update(notify_job)
                .where(notify_job.c.incident_id == incident_id)
                .values(finished_us=now_us, updated_us=now_us)
            )

    def job(self, incident_id: str) -> dict[str, Any] | None:
        with read_transaction(self.engine) as connection:
            row = connection.execute(
                select(notify_job).where(notify_job.c.incident_id == incident_id)
            ).first()
        return dict(row._mapping) if row else None

    def clocks(self) -> list[dict[str, Any]]:
        with read_transaction(self.engine) as connection:
            rows = connection.execute(select(notify_clock).order_by(notify_clock.c.due_us))
            return [dict(row._mapping) for row in rows]

    def filed(self, incident_id: str) -> frozenset[str]:
        """The regulators whose report on ``incident_id`` is recorded as filed."""
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(notify_clock.c.regulator).where(
                    notify_clock.c.incident_id == incident_id,
                    notify_clock.c.decision == "filed",
                )
            )
            return frozenset(str(regulator) for (regulator,) in rows)

    def open_clock(
        self, incident_id: str, regulator: str, title: str, starts_us: int, due_us: int
    ) -> None:
        with write_transaction(self.engine) as connection:
            known = connection.execute(
                select(notify_clock.c.incident_id).where(
                    notify_clock.c.incident_id == incident_id,
                    notify_clock.c.regulator == regulator,
                )
            ).first()
            if known is None:
                connection.execute(
                    insert(notify_clock).values(
                        incident_id=incident_id,
                        regulator=regulator,
                        title=title[:200],
                        starts_us=starts_us,
                        due_us=due_us,
                    )
                )

    def close_clock(
        self, incident_id: str, regulator: str, *, decision: str, filed_us: int | None
    ) -> None:
        with write_transaction(self.engine) as connection:
            connection.execute(
                update(notify_clock)
                .where(
                    notify_clock.c.incident_id == incident_id,
                    notify_clock.c.regulator == regulator,
                )
                .values(decision=decision, filed_us=filed_us)
            )
