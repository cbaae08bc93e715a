"""Sign-in throttling that a stranger cannot turn against an account's owner.

Every failed sign-in raises three levels, each of which drains at a steady rate:

* **pair** — this username from this source address. The address that fails pays:
  a wait after 3 failures, doubling up to 15 minutes. The owner signing in from
  another address is not touched.
* **source** — this address, whatever the username (password spraying): a wait
  after 20 failures, doubling up to 5 minutes.
* **account** — this username from everywhere (a crowd of addresses): a wait after
  10 failures, doubling up to 60 seconds. An address adds to it only while its own
  pair level is below the pair's threshold, so no single address can ever reach it;
  a one-time recovery code passes it.

Nothing ever locks: the longest wait anyone can cause for someone else is the
account's minute, and only with many addresses. A success empties the pair and
account levels (not the source's: a valid login must not pardon an address that
sprays). Attempts made during a wait are refused without counting. Usernames are
kept only as hashes, unknown ones exactly like known ones, so throttling says nothing
about which accounts exist. Step-up codes (a signed-in person's fresh TOTP code: a
paused session resuming, a containment switch, a console decision) have their own
levels, untouched by sign-in failures, so strangers cannot keep an officer from
containment:

* **step-up** — this account from this source: a wait after 5 wrong codes, doubling up
  to 5 minutes.
* **step-up-account** — this account from every source: a wait after 10 wrong codes
  (draining 10 every 15 minutes), doubling up to 15 minutes. Only someone who holds
  the account's token or console cookie can step up at all, and such a holder could
  otherwise guess codes from a crowd of networks (a /48 holds 65,536 /64s). The CLI on
  the host is not held by it, so an officer at the host can always contain.

Registrations on proof of presence (``Patient/$register``, and ``If-None-Exist`` on a
Patient's identifier) that registered no one have one more level, so that a desk cannot
fish for another clinic's patients by guessing birth dates:

* **registration** — this account, from every server process: a wait after 5 misses,
  of 3 minutes (the time one miss takes to drain), doubling up to 15 minutes. A success
  empties nothing: a desk registering real patients between guesses still pays for them.
"""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, and_, delete, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from carevault.access.tables import sign_in_throttle
from carevault.clock import Clock, to_micros, utc_now
from carevault.db import read_transaction, write_transaction

_HOUR_US = 3_600 * 1_000_000
#: Every this many failures a process sweeps out the levels that have drained to 0.
SWEEP_EVERY = 200


@dataclass(frozen=True)
class Rule:
    """One level: how many failures are free, how fast they drain, the longest wait."""

    kind: str
    free: int
    drain_per_hour: float
    max_wait_seconds: int
    describes: str
    #: The wait after the failure that uses up the allowance; each failure after doubles it.
    first_wait_seconds: int = 1

    def drained(self, level: float, since_us: int, now_us: int) -> float:
        """The level left at ``now_us`` of one last raised or waited out at ``since_us``."""
        return max(0.0, level - self.drain_per_hour * max(0, now_us - since_us) / _HOUR_US)

    def wait_seconds(self, level: float) -> int:
        """The wait after a failure that leaves the level at ``level``: 0 below the free
        allowance, then ``first_wait_seconds`` (1 unless set), twice that, four times …,
        at most ``max_wait_seconds``."""
        over = math.floor(level + 0.5) - self.free
        if over < 0:
            return 0
        return min(self.first_wait_seconds << min(over, 30), self.max_wait_seconds)


PAIR = Rule("pair", 3, 4.0, 15 * 60, "this username from this address")
SOURCE = Rule("source", 20, 20.0, 5 * 60, "this address")
ACCOUNT = Rule("account", 10, 10.0, 60, "this username from every address")
STEP_UP = Rule("step-up", 5, 5.0, 5 * 60, "step-up codes of this account from this address")
STEP_UP_ACCOUNT = Rule(
    "step-up-account", 10, 40.0, 15 * 60, "step-up codes of this account from every address"
)
REGISTRATION = Rule(
    "registration",
    5,
    20.0,
    15 * 60,
    "registrations of this account that registered no patient",
    first_wait_seconds=3 * 60,
)
RULES: Mapping[str, Rule] = {
    rule.kind: rule for rule in (PAIR, SOURCE, ACCOUNT, STEP_UP, STEP_UP_ACCOUNT, REGISTRATION)
}


@dataclass(frozen=True)
class Verdict:
    """Whether an attempt may go ahead; if not, which level holds it and for how long."""

    wait_seconds: int = 0
    kind: str | None = None

    @property
    def allowed(self) -> bool:
        return self.wait_seconds == 0

    @property
    def reason(self) -> str:
        rule = RULES.get(self.kind or "")
        return f"back-off on {rule.describes}" if rule else "no back-off"


ALLOWED = Verdict()


def username_key(username: str) -> str:
    """A username as the throttle keeps it: hashed, since people type passwords there."""
    folded = username.strip().casefold()
    return hashlib.sha256(folded.encode("utf-8", "replace")).hexdigest()[:32]


def source_key(address: str | None) -> str:
    """A source as the throttle counts it: an IPv6 address by its /64 (one host owns a
    whole /64 and can pick any address in it), anything else as given."""
    if not address:
        return "-"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


@dataclass(frozen=True)
class Counted:
    """What ``registration_begin`` counted: the wait before it and the wait it set."""

    blocked_before_us: int
    blocked_until_us: int


@dataclass(frozen=True)
class _Level:
    level: float
    updated_us: int
    blocked_until_us: int

    def now(self, rule: Rule, now_us: int) -> float:
        # A level drains only once its wait is over: an address that comes back the
        # moment its wait ends keeps doubling it.
        return rule.drained(self.level, max(self.updated_us, self.blocked_until_us), now_us)


class SignInThrottle:
    """The three sign-in levels, the step-up levels and the registration level, kept in
    the database so every server process sees the same ones."""

    def __init__(self, engine: Engine, clock: Clock = utc_now) -> None:
        self.engine = engine
        self.clock = clock
        self._failures = itertools.count(1)

    # --- sign-in -----------------------------------------------------------------------------

    def _subjects(self, username: str, source: str | None) -> dict[str, str]:
        user, where = username_key(username), source_key(source)
        return {"pair": f"{user}|{where}", "source": where, "account": user}

    def check(self, username: str, source: str | None, *, past_account: bool = False) -> Verdict:
        """May this attempt go ahead now? ``past_account``: the caller showed a valid
        recovery code, which the per-username level does not hold up."""
        now_us = to_micros(self.clock())
        subjects = self._subjects(username, source)
        if past_account:
            del subjects["account"]
        with read_transaction(self.engine) as connection:
            levels = self._read(connection, subjects)
        return _longest_wait(levels, now_us)

    def failed(self, username: str, source: str | None) -> None:
        """Count a failure on every level it belongs to."""
        now_us = to_micros(self.clock())
        subjects = self._subjects(username, source)
        with write_transaction(self.engine) as connection:
            levels = self._lock_levels(connection, subjects)
            pair = levels.get("pair")
            pair_level = pair.now(PAIR, now_us) if pair else 0.0
            for kind, subject in subjects.items():
                # One address feeds the account's level only up to its own threshold.
                if kind == "account" and pair_level >= PAIR.free:
                    continue
                self._raise(connection, RULES[kind], subject, levels.get(kind), now_us)
        if next(self._failures) % SWEEP_EVERY == 0:
            self.forget_drained()

    def succeeded(self, username: str, source: str | None) -> None:
        subjects = self._subjects(username, source)
        self._empty(
            [("pair", subjects["pair"]), ("account", subjects["account"])],
        )

    def clear(self, username: str, account_id: str | None = None) -> int:
        """An administrator empties a username's levels (every address), and with
        ``account_id`` the registration level it is counted in (``registrations.fisher``:
        the account's, or its practitioner's); how many."""
        user = username_key(username)
        levels = [
            and_(sign_in_throttle.c.kind == "account", sign_in_throttle.c.subject == user),
            and_(
                sign_in_throttle.c.kind == "pair",
                sign_in_throttle.c.subject.startswith(f"{user}|", autoescape=True),
            ),
        ]
        if account_id is not None:
            levels.append(
                and_(
                    sign_in_throttle.c.kind == REGISTRATION.kind,
                    sign_in_throttle.c.subject == account_id[:200],
                )
            )
        with write_transaction(self.engine) as connection:
            removed = connection.execute(delete(sign_in_throttle).where(or_(*levels))).rowcount
        return int(removed)

    # --- step-up -----------------------------------------------------------------------------

    def step_up_check(self, account_id: str, source: str | None) -> Verdict:
        """May this step-up go ahead now? ``source`` None: the CLI on the host, which the
        account-wide level does not hold (no token holder stands there), so the owner is
        never kept from containment at the console of the host itself."""
        now_us = to_micros(self.clock())
        with read_transaction(self.engine) as connection:
            levels = self._read(connection, _step_up_subjects(account_id, source))
        if source is None:
            levels.pop(STEP_UP_ACCOUNT.kind, None)
        return _longest_wait(levels, now_us)

    def step_up_failed(self, account_id: str, source: str | None) -> None:
        """Count a wrong code on this source's level and on the account's, whatever the
        source: codes guessed from many networks all count against the account."""
        now_us = to_micros(self.clock())
        subjects = _step_up_subjects(account_id, source)
        with write_transaction(self.engine) as connection:
            levels = self._lock_levels(connection, subjects)
            for kind, subject in subjects.items():
                self._raise(connection, RULES[kind], subject, levels.get(kind), now_us)

    def step_up_succeeded(self, account_id: str, source: str | None) -> None:
        # Only the source's level: the account's drains on its own, so the owner's
        # success does not give a guesser elsewhere a fresh allowance.
        self._empty([(STEP_UP.kind, _step_up_subject(account_id, source))])

    # --- registration ------------------------------------------------------------------------

    def registration_check(self, account: str) -> Verdict:
        """May this account try now? (Nothing is counted.)"""
        now_us = to_micros(self.clock())
        with read_transaction(self.engine) as connection:
            levels = self._read(connection, {REGISTRATION.kind: account})
        return _longest_wait(levels, now_us)

    def registration_begin(self, account: str) -> tuple[Verdict, Counted | None]:
        """Before an attempt: refused (and not counted) while the account waits; otherwise
        counted as a miss at once, so that attempts made together cannot all pass on the
        same count. ``registration_refund`` takes it back when the attempt registered
        someone (it needs what this returns)."""
        now_us = to_micros(self.clock())
        subjects = {REGISTRATION.kind: account}
        with write_transaction(self.engine) as connection:
            levels = self._lock_levels(connection, subjects)
            verdict = _longest_wait(levels, now_us)
            if not verdict.allowed:
                return verdict, None
            before = levels.get(REGISTRATION.kind)
            raised = self._raise(connection, REGISTRATION, account, before, now_us)
        return verdict, Counted(before.blocked_until_us if before else 0, raised)

    def registration_refund(self, account: str, counted: Counted) -> None:
        """The attempt ``registration_begin`` counted was no miss: one less, and the wait
        as it was before it, unless another miss has been counted since."""
        now_us = to_micros(self.clock())
        subjects = {REGISTRATION.kind: account}
        with write_transaction(self.engine) as connection:
            level = self._lock_levels(connection, subjects).get(REGISTRATION.kind)
            if level is None:
                return
            left = max(0.0, level.now(REGISTRATION, now_us) - 1)
            blocked = level.blocked_until_us
            if blocked == counted.blocked_until_us:
                blocked = counted.blocked_before_us
            connection.execute(
                update(sign_in_throttle)
                .where(
                    sign_in_throttle.c.kind == REGISTRATION.kind,
                    sign_in_throttle.c.subject == account,
                )
                .values(level=left, updated_us=now_us, blocked_until_us=blocked)
            )

    # --- storage -----------------------------------------------------------------------------

    def _lock_levels(
        self, connection: Connection, subjects: Mapping[str, str]
    ) -> dict[str, _Level]:
        """Inside a write transaction: the levels of ``subjects``, each row locked until it
        ends. A missing row is made first (at nothing), so that it can be locked: two
        first failures at once would otherwise both start from nothing, and one be lost."""
        for kind, subject in subjects.items():
            row = {"kind": kind, "subject": subject, "level": 0.0, "updated_us": 0,
                   "blocked_until_us": 0}  # fmt: skip
            dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
            connection.execute(
                dialect.insert(sign_in_throttle).values(**row).on_conflict_do_nothing()
            )
        return self._read(connection, subjects, lock=True)

    @staticmethod
    def _read(
        connection: Connection, subjects: Mapping[str, str], *, lock: bool = False
    ) -> dict[str, _Level]:
        statement = select(sign_in_throttle).where(
            tuple_(sign_in_throttle.c.kind, sign_in_throttle.c.subject).in_(list(subjects.items()))
        )
        if lock:
            statement = statement.with_for_update()
        found: dict[str, _Level] = {}
        for row in connection.execute(statement):
            if subjects.get(row.kind) == row.subject:
                found[row.kind] = _Level(row.level, row.updated_us, row.blocked_until_us)
        return found

    @staticmethod
    def _raise(
        connection: Connection, rule: Rule, subject: str, before: _Level | None, now_us: int
    ) -> int:
        """Count one failure on ``rule``'s level of ``subject``; when its wait ends."""
        level = (before.now(rule, now_us) if before else 0.0) + 1
        values = {
            "level": level,
            "updated_us": now_us,
            "blocked_until_us": now_us + rule.wait_seconds(level) * 1_000_000,
        }
        row = {"kind": rule.kind, "subject": subject, **values}
        keys = ["kind", "subject"]
        if connection.dialect.name == "postgresql":
            pg = postgresql.insert(sign_in_throttle).values(**row)
            connection.execute(pg.on_conflict_do_update(index_elements=keys, set_=values))
        else:
            lite = sqlite.insert(sign_in_throttle).values(**row)
            connection.execute(lite.on_conflict_do_update(index_elements=keys, set_=values))
        return int(values["blocked_until_us"])

    def _empty(self, keys: list[tuple[str, str]]) -> None:
        with write_transaction(self.engine) as connection:
            connection.execute(
                delete(sign_in_throttle).where(
                    tuple_(sign_in_throttle.c.kind, sign_in_throttle.c.subject).in_(keys)
                )
            )

    def forget_drained(self) -> int:
        """Forget the levels that have drained to nothing (unknown usernames would
        otherwise stay for ever); how many. A level drains from the end of its wait."""
        now_us = to_micros(self.clock())
        table = sign_in_throttle.c
        removed = 0
        with write_transaction(self.engine) as connection:
            for rule in RULES.values():
                removed += connection.execute(
                    delete(sign_in_throttle).where(
                        table.kind == rule.kind,
                        table.blocked_until_us <= now_us,
                        table.level * _HOUR_US
                        <= (now_us - table.blocked_until_us) * rule.drain_per_hour,
                    )
                ).rowcount
        return removed


def _step_up_subject(account_id: str, source: str | None) -> str:
    return f"{account_id}|{source_key(source)}"


def _step_up_subjects(account_id: str, source: str | None) -> dict[str, str]:
    return {STEP_UP.kind: _step_up_subject(account_id, source), STEP_UP_ACCOUNT.kind: account_id}


def _longest_wait(levels: Mapping[str, _Level], now_us: int) -> Verdict:
    longest = ALLOWED
    for kind, level in levels.items():
        remaining = level.blocked_until_us - now_us
        if remaining > 0:
            seconds = math.ceil(remaining / 1_000_000)
            if seconds > longest.wait_seconds:
                longest = Verdict(seconds, kind)
    return longest
