"""/verify's rate limits, shared by every server process through the database.

Three token buckets: one per source address (an IPv6 address counts by its /64, as the
sign-in throttle counts it), one per IPv6 /48 (what one site, or one attacker's
allocation, holds: 65,536 /64s, each of which would otherwise have a bucket of its own),
and one for everyone together. A check takes a token from each that applies, or from
none; a refusal says how many whole seconds until a token is there (the 429's
``Retry-After``). Both buckets are read and written
in one short transaction, so N server processes allow what one would, not N times it.
A check already costs a ledger write; this adds one small transaction to it.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
from collections.abc import Callable

from sqlalchemy import Connection, Engine, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from carevault.access.throttle import source_key
from carevault.db import write_transaction
from carevault.notify.tables import notify_verify_bucket

EVERYONE = "*"
#: How many addresses a genuine code was not sent to may be tried on it, a day
#: (refilling steadily), before no address gets a verdict on it: its recipient types
#: theirs (which costs nothing); someone holding a code seen without its "To" line (a
#: screenshot of a notice) would otherwise try the group's mobile numbers against it
#: at the global rate, and find its recipient.
ADDRESSES_PER_CODE = (5 / 86400.0, 5)
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
        per_network: tuple[float, int] | None = None,
    ) -> None:
        """``per_address``, ``per_network`` (an IPv6 /48; by default three addresses'
        worth) and ``everyone``: (tokens a second, burst)."""
        self.engine = engine
        self.now_us = now_us
        self.per_address = per_address
        self.per_network = per_network or (per_address[0] * 3, per_address[1] * 3)
        self.everyone = everyone
        self._checks = itertools.count(1)

    def buckets(self, source: str) -> dict[str, tuple[float, int]]:
        """The buckets a check from ``source`` takes from, each with (rate, burst)."""
        found = {"a:" + source_key(source)[:78]: self.per_address}
        network = network_of(source)
        if network is not None:
            found["n:" + network] = self.per_network
        found[EVERYONE] = self.everyone
        return found

    def take(self, source: str) -> int:
        """0 if the check may go ahead (a token is taken from every bucket); otherwise
        the whole seconds to wait (no token is taken)."""
        buckets = self.buckets(source)
        now = self.now_us()
        with write_transaction(self.engine) as connection:
            levels = _levels(connection, {key: burst for key, (_, burst) in buckets.items()}, now)
            tokens: dict[str, float] = {}
            for key, (rate, burst) in buckets.items():
                tokens[key] = _refilled(levels.get(key), now, rate, burst)
                wait = _wait(tokens[key], rate)
                if wait:
                    _store(connection, key, tokens[key], now)
                    return wait
            for key, level in tokens.items():
                _store(connection, key, level - 1.0, now)
        if next(self._checks) % SWEEP_EVERY == 0:
            self.forget_full()
        return 0

    def code_addresses_left(self, code_digest: str) -> bool:
        """Whether an address may be weighed against the code of ``code_digest``: fewer
        than ``ADDRESSES_PER_CODE`` addresses it was not sent to were tried on it
        (refilling steadily). Shared by every process."""
        rate, burst = ADDRESSES_PER_CODE
        key = _code_key(code_digest)
        now = self.now_us()
        with write_transaction(self.engine) as connection:
            level = _levels(connection, {key: burst}, now).get(key)
        return _refilled(level, now, rate, burst) >= 1.0

    def spend_code_address(self, code_digest: str) -> None:
        """One more address the code was not sent to was tried on it."""
        rate, burst = ADDRESSES_PER_CODE
        key = _code_key(code_digest)
        now = self.now_us()
        with write_transaction(self.engine) as connection:
            level = _levels(connection, {key: burst}, now).get(key)
            _store(connection, key, max(0.0, _refilled(level, now, rate, burst) - 1.0), now)

    def forget_full(self) -> int:
        """Delete the address, network and code buckets that have refilled (forgetting
        them changes nothing); how many. A code's bucket refills over a day, not in the
        minute an address's does: forgotten with them, a code's spent guesses came back
        at the next sweep, which the guesser's own checks bring on."""
        full_after_us = max(
            int(burst / rate * 1_000_000) if rate > 0 else 0
            for rate, burst in (self.per_address, self.per_network)
        )
        code_rate, code_burst = ADDRESSES_PER_CODE
        code_full_after_us = int(code_burst / code_rate * 1_000_000)
        table = notify_verify_bucket.c
        now = self.now_us()
        with write_transaction(self.engine) as connection:
            removed = connection.execute(
                delete(notify_verify_bucket).where(
                    table.subject != EVERYONE,
                    ~table.subject.startswith("c:"),
                    table.updated_us < now - full_after_us,
                )
            ).rowcount
            removed += connection.execute(
                delete(notify_verify_bucket).where(
                    table.subject.startswith("c:"),
                    table.updated_us < now - code_full_after_us,
                )
            ).rowcount
        return int(removed)


def _code_key(code_digest: str) -> str:
    return "c:" + code_digest[:32]


def network_of(source: str) -> str | None:
    """The /48 of an IPv6 source (not an IPv4-mapped one); None for anything else."""
    try:
        parsed = ipaddress.ip_address(source)
    except ValueError:
        return None
    if not isinstance(parsed, ipaddress.IPv6Address) or parsed.ipv4_mapped is not None:
        return None
    return str(ipaddress.ip_network(f"{parsed}/48", strict=False))


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
