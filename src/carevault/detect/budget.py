"""The release budget: how many distinct patients the gate hands one person in the last
hour and in the last 24 hours (not the calendar day: adversary round 73), enforced
before data leaves and shared by every server process through the database.

A person is an account, or every account of one practitioner: a doctor with a login at
each of two clinics (or a login and the apps launched with it) reads on one budget, not
one per login (adversary round 52 left this open). Each request is held to the limits
of its own login's role, counted against everything the person was given.

A patient already released to the account today costs nothing more; a request that
would take the account past its budget is refused whole (429, saying why), whatever
its ``_count``: no single request can take a thousand patients. The refusal is an
audit entry like any other, and the detectors raise an alert on it.

The patients a request releases are counted and recorded in the same transaction as its
audit entries (the ledger's group commit): a first release costs a few statements in a
commit the request makes anyway, not a durable commit of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass

from sqlalchemy import Connection, case, delete, func, insert, select

from carevault.detect.model import BUDGET_REASON, DAY_US, HOUR_US
from carevault.detect.tables import detect_release
from carevault.ledger.trail import Declined

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


class ReleaseRefused(Declined):
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


class ReleaseBudget:
    """Implements the gate's ``ReleaseGuard``."""

    def __init__(
        self,
        budgets: Budgets,
        throttled: Callable[[], Collection[str]],
        offset_us: int = 8 * HOUR_US,
    ) -> None:
        self.budgets = budgets
        self.throttled = throttled
        self.offset_us = offset_us
        #: (account, day) → patients this process knows are recorded for that day.
        self._known: dict[tuple[str, int], set[str]] = {}
        #: The day whose releases this process last swept the days before (``Release``).
        self._swept: int | None = None
        self._lock = threading.Lock()

    def claim(
        self,
        principal: str,
        role: str,
        pseudonyms: Collection[str],
        at_us: int,
        practitioner_id: str | None = None,
    ) -> Release | None:
        """What must be recorded, with the request's audit entries, for ``pseudonyms`` to
        be released to ``principal`` now; None when this process knows every one of them
        is already recorded today (a patient given today costs nothing more).
        ``practitioner_id``: the person the account is (``holder``): their accounts
        share one count. A throttled login, and every login of a throttled login's
        person (``throttled`` names them by ``holder`` too), is held to its share."""
        day = (at_us + self.offset_us) // DAY_US
        who = holder(principal, practitioner_id)
        with self._lock:
            known = self._known.get((who, day), set())
            new = frozenset(p for p in pseudonyms if p and p not in known)
        if not new:
            return None
        hour_limit, day_limit = self.budgets.of(role)
        throttled = self.throttled()
        if principal in throttled or who in throttled:
            hour_limit = max(1, int(hour_limit * THROTTLE_SHARE))
            day_limit = max(1, int(day_limit * THROTTLE_SHARE))
        return Release(self, who, day, new, at_us, hour_limit, day_limit)

    def sweep_due(self, day: int) -> bool:
        """Whether the releases of days before ``day`` are still to be swept by this
        process (once a day: the budget reaches back 24 hours, into yesterday at most)."""
        with self._lock:
            return self._swept != day

    def swept(self, day: int) -> None:
        with self._lock:
            self._swept = day

    def remember(self, who: str, day: int, pseudonyms: Collection[str]) -> None:
        """Note ``pseudonyms`` as recorded for ``who`` (a ``holder``) on ``day`` (once
        durable)."""
        with self._lock:
            if len(self._known) > 10_000:
                self._known.clear()
            self._known.setdefault((who, day), set()).update(pseudonyms)


def holder(principal: str, practitioner_id: str | None) -> str:
    """Whose budget a release is counted in (``detect_release.account``): the
    practitioner's, shared by every account of theirs, or the account's own. The two
    never meet: a principal names its kind first (``staff:``, ``client:``)."""
    return f"practitioner:{practitioner_id}" if practitioner_id else principal


@dataclass(frozen=True)
class Release:
    """One request's release, as a rider of its audit entries (``ledger.trail.Rider``):
    counted and recorded in the transaction that makes the entries durable, after the
    ledger's head is locked. That lock orders every append of every server process, so
    two requests of one account (in this process or another) are judged one after the
    other, each seeing what the other recorded: the budget is never overrun. If the
    record cannot be written, neither can the entries, and nothing is returned."""

    budget: ReleaseBudget
    #: Whose count it is (``holder``): an account, or a practitioner with every account.
    who: str
    day: int
    pseudonyms: frozenset[str]
    at_us: int
    hour_limit: int
    day_limit: int

    def ride(self, connection: Connection) -> None:
        """Refuse (``ReleaseRefused``, before writing anything) or record. The first
        release of a day a process records also forgets the releases of the days before
        yesterday: the budget counts the last 24 hours', and the table grew by every
        account's patients of every day for good (the ledger keeps what was released)."""
        if self.budget.sweep_due(self.day):
            connection.execute(delete(detect_release).where(detect_release.c.day < self.day - 1))
        fresh = self.pseudonyms - _given(connection, self.who, self.day, self.pseudonyms).keys()
        if not fresh:
            return
        since = self.at_us - HOUR_US
        window = self.at_us - DAY_US
        # The day is the last 24 hours, not the calendar day: counted from midnight, an
        # account read a day's budget before it and another after, twice the budget in
        # a few hours, every night (adversary round 73). The table keeps yesterday's
        # releases, which is as far back as 24 hours reach; a patient given on both
        # days is one, and one given today costs nothing more. A patient given again
        # today has their row of yesterday moved to today (below), so no patient has a
        # row on both days and the counts are of rows, an index range, not of distinct
        # patients: under the ledger head's lock, over 50,000 rows a day (an
        # integration's budget), 8 ms against 86 ms for a distinct count (in-memory
        # SQLite, stop 59).
        in_day, in_hour = _counts(connection, self.who, self.day, window, since)
        earlier = _given(connection, self.who, self.day - 1, fresh, window)
        day_fresh = fresh - earlier.keys()
        hour_fresh = fresh - {p for p, at_us in earlier.items() if at_us >= since}
        if in_hour + len(hour_fresh) > self.hour_limit or in_day + len(day_fresh) > self.day_limit:
            raise ReleaseRefused(
                f"{BUDGET_REASON}: this request would give {_whom(self.who)} "
                f"{len(fresh)} more patients, after {in_hour} in the last hour "
                f"and {in_day} in the last 24 hours; this login's budget is "
                f"{self.hour_limit} an hour and {self.day_limit} a day. Try later, or ask "
                "the privacy officer."
            )
        moved = sorted(earlier)
        for start in range(0, len(moved), 500):
            connection.execute(
                delete(detect_release).where(
                    detect_release.c.account == self.who,
                    detect_release.c.day == self.day - 1,
                    detect_release.c.pseudonym.in_(moved[start : start + 500]),
                )
            )
        connection.execute(
            insert(detect_release),
            [
                {"account": self.who, "day": self.day, "pseudonym": p, "at_us": self.at_us}
                for p in sorted(fresh)
            ],
        )

    def committed(self) -> None:
        self.budget.swept(self.day)
        self.budget.remember(self.who, self.day, self.pseudonyms)


def _whom(who: str) -> str:
    """How a refusal names whose budget it is."""
    if who.startswith("practitioner:"):
        return "the practitioner (every account of theirs)"
    return "the account"


def _counts(
    connection: Connection, who: str, day: int, window_us: int, since_us: int
) -> tuple[int, int]:
    """(patients given since ``window_us``, of which since ``since_us``), on ``day`` and
    the day before: one statement over an index range. A row each: a patient has a row
    on one of the two days only (``Release.ride`` moves yesterday's to today)."""
    in_day, in_hour = connection.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((detect_release.c.at_us >= since_us, 1), else_=0)), 0),
        ).where(
            detect_release.c.account == who,
            detect_release.c.day.in_([day - 1, day]),
            detect_release.c.at_us >= window_us,
        )
    ).one()
    return int(in_day), int(in_hour)


def _given(
    connection: Connection, who: str, day: int, new: Collection[str], since_us: int | None = None
) -> dict[str, int]:
    """Which of ``new`` were given to ``who`` on ``day`` (at or after ``since_us``), and
    when."""
    ordered = sorted(new)
    found: dict[str, int] = {}
    for start in range(0, len(ordered), 500):
        statement = select(detect_release.c.pseudonym, detect_release.c.at_us).where(
            detect_release.c.account == who,
            detect_release.c.day == day,
            detect_release.c.pseudonym.in_(ordered[start : start + 500]),
        )
        if since_us is not None:
            statement = statement.where(detect_release.c.at_us >= since_us)
        found.update((pseudonym, int(at_us)) for pseudonym, at_us in connection.execute(statement))
    return found
