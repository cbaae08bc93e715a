"""/verify's rate limits, shared by every server process through the database.

Two token buckets: one per source address (an IPv6 address counts by its /64, as the
sign-in throttle counts it) and one for everyone together. A check takes a token from
the address's bucket, then from everyone's; a refusal says how many whole seconds
until a token is there (the 429's ``Retry-After``). Both buckets are read and written
in one short transaction, so N server processes allow what one would, not N times it.
A check already costs a ledger write; this adds one small transaction to it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

from sqlalchemy import Connection, Engine, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from carevault.access.throttle import source_key
from carevault.db import write_transaction
from carevault.notify.tables import notify_verify_bucket

EVERYONE = "*"
#: Every this many checks a process forgets the address buckets that are full again.
SWEEP_EVERY = 500


class SharedBuckets:
    def __init__(
        self,
        engine: Engine,
        now_us: Callable[[], int],
        *,
        per_address: tuple[float, int],
        everyone: tuple[float, int],
    ) -> None:
        """``per_address`` and ``everyone``: (tokens a second, burst)."""
        self.engine = engine
        self.now_us = now_us
        self.per_address = per_address
        self.everyone = everyone
        self._checks = itertools.count(1)

    def take(self, source: str) -> int:
        """0 if the check may go ahead (a token is taken from both buckets); otherwise
        the whole seconds to wait (no token is taken)."""
        address = "a:" + source_key(source)[:78]
        now = self.now_us()
        with write_transaction(self.engine) as connection:
            levels = _levels(
                connection, {address: self.per_address[1], EVERYONE: self.everyone[1]}, now
            )
            mine = _refilled(levels.get(address), now, *self.per_address)
            wait = _wait(mine, self.per_address[0])
            if wait:
                _store(connection, address, mine, now)
                return wait
            everyone = _refilled(levels.get(EVERYONE), now, *self.everyone)
            wait = _wait(everyone, self.everyone[0])
            if wait:
                _store(connection, EVERYONE, everyone, now)
                return wait
            _store(connection, address, mine - 1.0, now)
            _store(connection, EVERYONE, everyone - 1.0, now)
        if next(self._checks) % SWEEP_EVERY == 0:
            self.forget_full()
        return 0

    def forget_full(self) -> int:
        """Delete the address buckets that have refilled (forgetting them changes
        nothing); how many."""
        rate, burst = self.per_address
        full_after_us = int(burst / rate * 1_000_000) if rate > 0 else 0
        table = notify_verify_bucket.c
        with write_transaction(self.engine) as connection:
            removed = connection.execute(
                delete(notify_verify_bucket).where(
                    table.subject != EVERYONE, table.updated_us < self.now_us() - full_after_us
                )
            ).rowcount
        return int(removed)


def _levels(
    connection: Connection, subjects: dict[str, int], now: int
) -> dict[str, tuple[float, int]]:
    # Rows first (a bucket starts full), then read them locked: two processes that meet a
    # new address at once both insert nothing twice and then queue on the row lock.
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    for subject, burst in subjects.items():
        connection.execute(
            dialect.insert(notify_verify_bucket)
            .values(subject=subject, tokens=float(burst), updated_us=now)
            .on_conflict_do_nothing(index_elements=["subject"])
        )
    rows = connection.execute(
        select(notify_verify_bucket)
        .where(notify_verify_bucket.c.subject.in_(list(subjects)))
        .with_for_update()
    )
    return {row.subject: (row.tokens, row.updated_us) for row in rows}


def _refilled(level: tuple[float, int] | None, now: int, rate: float, burst: int) -> float:
    if level is None:
        return float(burst)
    tokens, then = level
    return min(float(burst), tokens + max(0, now - then) / 1_000_000 * rate)


def _wait(tokens: float, rate: float) -> int:
    if tokens >= 1.0:
        return 0
    return max(1, math.ceil((1.0 - tokens) / rate)) if rate > 0 else 3600


def _store(connection: Connection, subject: str, tokens: float, now: int) -> None:
    connection.execute(
        update(notify_verify_bucket)
        .where(notify_verify_bucket.c.subject == subject)
        .values(tokens=tokens, updated_us=now)
    )
