"""The notice table's reads and writes: each a short transaction of its own, so that a
state written here is durable before the job goes on (``sending`` before a send)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, insert, select, update

from carevault.db import read_transaction, write_transaction
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

    def by_code(self, digest: str) -> tuple[str, str, int | None] | None:
        """(state, channel, sent_us) of the notice whose code has ``digest``."""
        query = select(
            notify_notice.c.state, notify_notice.c.channel, notify_notice.c.sent_us
        ).where(notify_notice.c.code_digest == digest)
        with read_transaction(self.engine) as connection:
            found = connection.execute(query).first()
        return (found[0], found[1], found[2]) if found else None

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

    def start_job(self, incident_id: str, tiers: Sequence[str], total: int, now_us: int) -> None:
        with write_transaction(self.engine) as connection:
            known = connection.execute(
                select(notify_job.c.incident_id).where(notify_job.c.incident_id == incident_id)
            ).first()
            values = {"tiers": ",".join(tiers), "total": total, "updated_us": now_us}
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
