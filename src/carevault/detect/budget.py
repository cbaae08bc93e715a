"""The release budget: how many distinct patients the gate hands one account per hour
and per day, enforced before data leaves and shared by every server process through
the database.

A patient already released to the account today costs nothing more; a request that
would take the account past its budget is refused whole (429, saying why), whatever
its ``_count``: no single request can take a thousand patients. The refusal is an
audit entry like any other, and the detectors raise an alert on it.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, func, insert, select, text

from carevault.db import pinned_connection, write_transaction
from carevault.detect.model import BUDGET_REASON, DAY_US, HOUR_US
from carevault.detect.tables import detect_release

#: Distinct patients per hour and per day, per role.
DEFAULT_BUDGETS: dict[str, tuple[int, int]] = {
    "physician": (80, 300),
    "nurse": (80, 300),
    "pharmacist": (100, 400),
    "front_desk": (150, 600),
    "clinic_manager": (100, 400),
    "privacy_officer": (200, 1000),
    "billing": (2000, 10_000),
    "integration": (5000, 50_000),
}
FALLBACK = (80, 300)
#: A throttled account gets this share of its budget.
THROTTLE_SHARE = 0.1


class ReleaseRefused(Exception):
    """The account's release budget would be exceeded: refused (429) and recorded."""


@dataclass(frozen=True)
class Budgets:
    per_role: dict[str, tuple[int, int]]

    @classmethod
    def parse(cls, text_value: str) -> Budgets:
        """Defaults overridden by 'role=HOUR/DAY,role=HOUR/DAY'."""
        table = dict(DEFAULT_BUDGETS)
        for item in (part.strip() for part in text_value.split(",")):
            if not item:
                continue
            role, _, limits = item.partition("=")
            hour, _, day = limits.partition("/")
            try:
                table[role.strip()] = (int(hour), int(day or int(hour) * 4))
            except ValueError:
                raise ValueError(
                    f"CAREVAULT_RELEASE_BUDGET: {item!r} is not role=HOUR/DAY"
                ) from None
            if min(table[role.strip()]) < 1:
                raise ValueError(f"CAREVAULT_RELEASE_BUDGET: {item!r} must be at least 1")
        return cls(table)

    def of(self, role: str) -> tuple[int, int]:
        return self.per_role.get(role, FALLBACK)


def _lock_key(account: str) -> int:
    return int.from_bytes(hashlib.sha256(account.encode()).digest()[:8], "big") >> 1


class ReleaseBudget:
    """Implements the gate's ``ReleaseGuard``."""

    def __init__(
        self,
        engine: Engine,
        budgets: Budgets,
        throttled: Callable[[], Collection[str]],
        offset_us: int = 8 * HOUR_US,
    ) -> None:
        self.engine = engine
        self.budgets = budgets
        self.throttled = throttled
        self.offset_us = offset_us
        #: (account, day) → patients this process knows are recorded for that day.
        self._known: dict[tuple[str, int], set[str]] = {}
        self._lock = threading.Lock()

    def admit(self, principal: str, role: str, pseudonyms: Collection[str], at_us: int) -> None:
        """Record that ``pseudonyms`` are released to ``principal`` now, or refuse."""
        day = (at_us + self.offset_us) // DAY_US
        key = (principal, day)
        with self._lock:
            known = self._known.get(key, set())
            new = {p for p in pseudonyms if p and p not in known}
        if not new:
            return
        hour_limit, day_limit = self.budgets.of(role)
        if principal in self.throttled():
            hour_limit = max(1, int(hour_limit * THROTTLE_SHARE))
            day_limit = max(1, int(day_limit * THROTTLE_SHARE))
        with self._transaction() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(principal)}
                )
            stored = self._stored(connection, principal, day, new)
            fresh = new - stored
            if fresh:
                in_day, in_hour = self._counts(connection, principal, day, at_us - HOUR_US)
                if in_hour + len(fresh) > hour_limit or in_day + len(fresh) > day_limit:
                    raise ReleaseRefused(
                        f"{BUDGET_REASON}: this request would give the account "
                        f"{len(fresh)} more patients; it has had {in_hour} in the last hour "
                        f"and {in_day} today, and its budget is {hour_limit} an hour and "
                        f"{day_limit} a day. Try later, or ask the privacy officer."
                    )
                connection.execute(
                    insert(detect_release),
                    [
                        {"account": principal, "day": day, "pseudonym": p, "at_us": at_us}
                        for p in sorted(fresh)
                    ],
                )
        with self._lock:
            if len(self._known) > 10_000:
                self._known.clear()
            self._known.setdefault(key, set()).update(new)

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """Its own write transaction; inside a transaction Bundle, that transaction."""
        held = pinned_connection(self.engine)
        if held is not None:
            yield held
            return
        with write_transaction(self.engine) as connection:
            yield connection

    def _stored(self, connection: Connection, principal: str, day: int, new: set[str]) -> set[str]:
        ordered = sorted(new)
        found: set[str] = set()
        for start in range(0, len(ordered), 500):
            rows = connection.execute(
                select(detect_release.c.pseudonym).where(
                    detect_release.c.account == principal,
                    detect_release.c.day == day,
                    detect_release.c.pseudonym.in_(ordered[start : start + 500]),
                )
            ).all()
            found.update(p for (p,) in rows)
        return found

    def _counts(
        self, connection: Connection, principal: str, day: int, since_us: int
    ) -> tuple[int, int]:
        mine = (detect_release.c.account == principal) & (detect_release.c.day == day)
        in_day = connection.execute(select(func.count()).where(mine)).scalar_one()
        in_hour = connection.execute(
            select(func.count()).where(mine & (detect_release.c.at_us >= since_us))
        ).scalar_one()
        return int(in_day), int(in_hour)
