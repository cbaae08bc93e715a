"""The detection engine: every committed audit-ledger entry, in order, through the
detectors, off the request path.

The ledger writer tells the engine of each group commit (``committed``: a queue put,
nothing more); a thread of the engine takes what has accumulated every
``poll_seconds`` (or sooner when woken), under the cursor's lease, and writes the
batch's state, alerts and new cursor position in one transaction. Entries committed by
other processes, or inside a write's own transaction, are read back from the ledger.
A detector that fails on an entry is logged and raises an internal alert; the ledger
never waits for the engine.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace

from sqlalchemy import Connection, Engine, func, select

from carevault.access.tables import staff_account
from carevault.db import pinned, read_transaction, write_transaction
from carevault.detect.alerts import Alert, AlertStore, Raised, merge_findings
from carevault.detect.bypass import BATCH as BYPASS_BATCH
from carevault.detect.bypass import BypassCheck
from carevault.detect.decoys import decoy_finding
from carevault.detect.explain import Explainer
from carevault.detect.flags import Flags
from carevault.detect.kin import Kinship
from carevault.detect.model import (
    DAY_US,
    HOUR_US,
    MINUTE_US,
    REFUSED_SIGN_INS,
    RESPONDER,
    Access,
    Finding,
    Severity,
)
from carevault.detect.profile import Profile, RoleBaseline
from carevault.detect.signals import WATCH_US, AccountState, Context, Detectors, Person
from carevault.detect.signin import SignInFailures
from carevault.detect.state import (
    Cursor,
    advance_cursor,
    load_states,
    read_cursor,
    save_states,
    write_cursor,
)
from carevault.detect.tamper import tamper_finding
from carevault.ledger.events import Tag
from carevault.ledger.store import LedgerEntry, LedgerStore

log = logging.getLogger("carevault.detect")

CURSOR = "audit"
BATCH = 5000
LEASE_US = 5_000_000
#: How long a wake-up waits for more group commits before judging them in one batch
#: (capped by the poll interval, 0.2 s by default). Each batch is one write transaction
#: (a durable commit on SQLite) whatever its size, so at a steady trickle of reads a
#: longer gathering halves the detectors' share of the server's work; the alert still
#: lands well within a second of its entry (bench.detect measures it).
GATHER_SECONDS = 0.25
#: The longest a judged batch waits in memory to be written, when it raises nothing new
#: (no new alert, no higher severity): under a sustained read, one write transaction
#: (whose write lock every request's audit commit waits for) a second instead of one
#: per batch. Well inside the lease, which every write renews.
WRITE_SECONDS = 1.0
#: How often the unwrap check's progress is read (it judges unwraps 5 s old or more).
UNWRAP_SECONDS = 1.0
#: How far back a rebuilt process replays the ledger to refill its windows.
REPLAY_US = DAY_US + HOUR_US
REPLAY_MAX = 300_000
#: How often (in the entries' time) the kin tokens writes replaced are pruned.
PRUNE_EVERY_US = HOUR_US


def wall_us() -> int:
    return time.time_ns() // 1000


#: Entries waiting longer than this to be judged: the detectors are behind (alerts come
#: late, and responses later still), though a process holds the lease.
BEHIND_US = 60_000_000


@dataclass(frozen=True)
class Progress:
    """How far the detectors have judged the audit ledger, and whether any process is
    judging it now: what ``carevault status`` and the console's dashboard show. A server
    started with the thread off (``CAREVAULT_DETECT_THREAD``) and no ``carevault detect``
    beside it judges nothing, and nothing else would say so."""

    #: Entries judged (the stored cursor: the next entry to judge).
    judged: int
    #: Entries in the ledger.
    entries: int
    #: Whether a process holds the cursor's lease now.
    judging: bool
    #: When the oldest entry not yet judged was written (None: none waits).
    waiting_since_us: int | None

    @property
    def waiting(self) -> int:
        return max(0, self.entries - self.judged)

    def behind(self, now_us: int) -> bool:
        """Whether an entry has waited longer than ``BEHIND_US`` to be judged."""
        return self.waiting_since_us is not None and now_us - self.waiting_since_us > BEHIND_US


@dataclass
class _Memory:
    """In-memory state: judged up to ``position``, of which everything up to ``stored``
    is written (the stored cursor, as this process last wrote it). Valid while the
    stored cursor stands where this process left it."""

    position: int | None = None
    stored: int | None = None
    accounts: dict[str, AccountState] = field(default_factory=dict)
    #: The windows of practitioners with more than one login, by practitioner id.
    people: dict[str, Person] = field(default_factory=dict)
    roles: dict[str, RoleBaseline] = field(default_factory=dict)
    observed_since_us: int = 0
    #: The time of the latest entry judged (0: none yet).
    judged_us: int = 0
    #: Unexplained picks of kin waiting out the grace for a care relationship.
    deferred: list[Access] = field(default_factory=list)
    #: Judged, not yet written: findings (merged per alert) and the states they changed.
    pending: list[Finding] = field(default_factory=list)
    dirty: set[str] = field(default_factory=set)
    written_at: float = field(default_factory=time.monotonic)
    #: The lease this process last wrote with the cursor at ``stored`` (wall clock, µs).
    lease_until_us: int = 0
    #: The stored alerts pending findings update (None: none stored), by dedup key.
    alerts: dict[str, Alert | None] = field(default_factory=dict)
    #: Refused sign-ins per source network (``signin``): no account's state.
    sign_ins: SignInFailures = field(default_factory=SignInFailures)

    @property
    def unwritten(self) -> bool:
        return self.position is not None and (self.position != self.stored or bool(self.pending))


class DetectionEngine:
    def __init__(
        self,
        engine: Engine,
        audit: LedgerStore,
        explainer: Explainer,
        alerts: AlertStore,
        flags: Flags,
        now_us: Callable[[], int],
        *,
        bypass: BypassCheck | None = None,
        kinship: Kinship | None = None,
        on_raised: Callable[[list[Raised]], None] | None = None,
        offset_us: int = 8 * HOUR_US,
        poll_seconds: float = 0.2,
        kin_grace_us: int = 10 * MINUTE_US,
        detectors: Detectors | None = None,
    ) -> None:
        self.kin_grace_us = kin_grace_us
        self.engine = engine
        self.audit = audit
        self.explainer = explainer
        self.alerts = alerts
        self.flags = flags
        self.now_us = now_us
        self.bypass = bypass
        self.kinship = kinship
        self.on_raised = on_raised
        self.offset_us = offset_us
        self.poll_seconds = poll_seconds
        self.owner = secrets.token_hex(8)
        #: The most entries one batch judges.
        self.max_batch = BATCH
        self.write_seconds = WRITE_SECONDS
        self.detectors = detectors or Detectors()
        self._memory = _Memory()
        self._buffer: dict[int, bytes] = {}
        self._buffer_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._step_lock = threading.Lock()
        #: The last batch left work behind it (more entries or unwraps than one batch).
        self._behind = False
        self._unwraps_read_at = float("-inf")
        #: The entries' time at the last pruning of replaced kin tokens (None: not yet).
        self._pruned_us: int | None = None
        self.failures = 0

    # --- fed by the ledger writer ------------------------------------------------------------

    def committed(self, first: int, entries: Sequence[LedgerEntry]) -> None:
        """Called by the writer after a group commit: keep the bytes, wake the thread."""
        with self._buffer_lock:
            for offset, entry in enumerate(entries):
                self._buffer[first + offset] = entry.data
            if len(self._buffer) > 10 * self.max_batch:
                # Nobody is taking them (another process holds the lease): drop the oldest.
                for position in sorted(self._buffer)[: len(self._buffer) // 2]:
                    del self._buffer[position]
        self._wake.set()

    # --- the thread ------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="detect", daemon=True)
            self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether the thread runs (started and not ended)."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._memory.unwritten:
            try:
                # What was judged and not yet written: written rather than judged again.
                self.step(flush=True)
            except Exception as error:  # noqa: BLE001 - judged again by whoever takes over
                log.warning("the detectors' last batch was not written: %s", type(error).__name__)
        self.release()

    def release(self) -> None:
        """Give the lease up (on shutdown), so another process takes over at once."""
        try:
            with self._step_lock, write_transaction(self.engine) as connection:
                cursor = read_cursor(connection, CURSOR, lock=True)
                if cursor.owner == self.owner:
                    write_cursor(connection, CURSOR, cursor.position, self.owner, 0, self.now_us())
        except Exception as error:  # noqa: BLE001 - shutting down; the lease lapses anyway
            log.warning("the detectors' lease was not released: %s", type(error).__name__)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._wake.wait(self.poll_seconds):
                # Woken by this process's own commits: let a few more gather, one batch
                # (one transaction) for all of them. Not when the poll ran out: what
                # others committed (or, in a detection process of its own, everything)
                # has been gathering since the last look, and waiting more only delays
                # the alert.
                self._stop.wait(min(GATHER_SECONDS, self.poll_seconds))
            self._wake.clear()
            try:
                # One batch per wake-up, and more at once only while a backlog remains
                # (more than a batch was waiting). Stepping again as long as anything was
                # done made a batch of the one or two entries committed during the
                # previous batch, over and over: a durable commit per read or so, which
                # halved a lone client's reads (bench.detect).
                while self.step() and self._behind and not self._stop.is_set():
                    pass
                self.failures = 0
            except Exception as error:  # noqa: BLE001 - the engine must outlive any batch
                self.failures += 1
                log.error("detection batch failed: %s", type(error).__name__)
                self._memory = _Memory()
                self._stop.wait(min(5.0, 0.2 * self.failures))

    def catch_up(self) -> int:
        """Bring the detectors up to the ledger's head now (unless another live process
        holds the lease); return how many entries were processed."""
        done = 0
        while True:
            before = self._memory.position or 0
            if not self.step(flush=True):
                return done
            done += (self._memory.position or 0) - before

    def position(self) -> int:
        """How many audit entries the detectors have judged (the stored cursor)."""
        return self.cursor().position

    def progress(self) -> Progress:
        """Where the stored cursor stands against the ledger's head (see ``Progress``)."""
        cursor = self.cursor()
        entries, _ = self.audit.head()
        waiting = cursor.position < entries
        return Progress(
            judged=cursor.position,
            entries=entries,
            judging=cursor.lease_until_us > wall_us(),
            waiting_since_us=self.audit.written_at(cursor.position) if waiting else None,
        )

    def cursor(self) -> Cursor:
        """The stored cursor: how far the detectors have judged, and whose lease it is."""
        with read_transaction(self.engine) as connection:
            return read_cursor(connection, CURSOR)

    # --- one batch -------------------------------------------------------------------------

    def step(self, flush: bool = False) -> bool:
        """Process the next batch; False when there was nothing to do (or no lease).
        ``flush``: write what was judged now, rather than within ``WRITE_SECONDS``."""
        with self._step_lock:
            return self._step(flush)

    def _step(self, flush: bool = False) -> bool:
        memory = self._memory
        # While this process's lease is well within its term, no other process can have
        # moved the cursor: it stands where this one wrote it, and is not read again. The
        # unwrap check's position is read once a second (it judges unwraps at least five
        # seconds old). Otherwise one snapshot for all three.
        ours = (
            memory.stored is not None
            and memory.lease_until_us - wall_us() > LEASE_US // 2
            and not flush
        )
        look_at_unwraps = self.bypass is not None and (
            flush or time.monotonic() - self._unwraps_read_at >= UNWRAP_SECONDS
        )
        with read_transaction(self.engine) as connection, pinned(self.engine, connection):
            cursor = (
                Cursor(CURSOR, memory.stored or 0, self.owner, memory.lease_until_us)
                if ours
                else read_cursor(connection, CURSOR)
            )
            head, _ = self.audit.head()
            unwraps = (
                self.bypass.progress() if self.bypass is not None and look_at_unwraps else None
            )
        if look_at_unwraps:
            self._unwraps_read_at = time.monotonic()
        bypass_work = unwraps is not None and self.bypass is not None and self.bypass.ready(unwraps)
        self._behind = False
        if cursor.held_by_other(self.owner, wall_us()):
            self._memory = _Memory()
            return False
        if memory.stored != cursor.position:
            # Another process moved the cursor (or this one has not started): whatever
            # was judged here and not written is judged again from the stored position.
            memory = self._memory = _Memory()
        judged = cursor.position if memory.position is None else memory.position
        kin_work = memory.position is not None and bool(self._due(memory))
        if judged >= head and not bypass_work and not kin_work:
            if memory.unwritten and (flush or self._write_due(memory)):
                return self._write(memory, cursor.position, self._look_up(memory), None)
            if cursor.owner == self.owner and cursor.lease_until_us - wall_us() < LEASE_US // 2:
                self._renew(cursor.position)
            return False
        if memory.position is None:
            memory = self._memory = self._rebuild(cursor.position)
        start = judged
        end = min(head, start + self.max_batch)
        accesses = self._judge(self._read(start, end))
        if accesses:
            memory.judged_us = max(memory.judged_us, accesses[-1].at_us)
        self._load(memory, accesses)
        accesses = self._date_care(memory, accesses)
        context = self._context(memory)
        findings: list[Finding] = []
        for access in accesses:
            findings.extend(self._observe(access, memory, context, memory.dirty))
        memory.deferred.extend(a for a in accesses if _kin_pick(a))
        findings.extend(self._judge_kin(memory, context))
        bypass_findings, bypass_done = (
            self.bypass.check(unwraps)
            if self.bypass is not None and bypass_work and unwraps is not None
            else ([], None)
        )
        findings.extend(bypass_findings)
        memory.position = end
        memory.pending = merge_findings([*memory.pending, *findings])
        self._behind = end < head or (
            bypass_done is not None
            and unwraps is not None
            and bypass_done - unwraps[0] >= BYPASS_BATCH
            and unwraps[1] > bypass_done
        )
        with self._buffer_lock:
            for position in [p for p in self._buffer if p < end]:
                del self._buffer[position]
        # Written now when an alert is new or escalates (a response may be due, and the
        # alert must be listed within a second), when the unwrap check moved, or when the
        # last write is a second old; otherwise what a batch judged (and the widening of
        # alerts already raised: later positions, counts) waits in memory for the next.
        seen = self._look_up(memory)
        urgent = bypass_done is not None or self._raises(memory, seen)
        if flush or urgent or self._write_due(memory):
            self._write(memory, cursor.position, seen, bypass_done)
        return end > start or bool(bypass_findings)

    def _write_due(self, memory: _Memory) -> bool:
        return time.monotonic() - memory.written_at >= self.write_seconds

    def _look_up(self, memory: _Memory) -> dict[str, Alert]:
        """The stored alerts the pending findings would update, read once per alert (and
        again only after this process has written it)."""
        unknown = [f for f in memory.pending if f.dedup_key not in memory.alerts]
        if unknown:
            memory.alerts.update(self.alerts.look_up(unknown))
            for finding in unknown:
                memory.alerts.setdefault(finding.dedup_key, None)
        return {
            f.dedup_key: alert
            for f in memory.pending
            if (alert := memory.alerts.get(f.dedup_key)) is not None
        }

    @staticmethod
    def _raises(memory: _Memory, seen: dict[str, Alert]) -> bool:
        """Whether a pending finding makes a new alert or raises an alert's severity."""
        return any(
            f.dedup_key not in seen or f.severity.rank > seen[f.dedup_key].severity.rank
            for f in memory.pending
        )

    def _write(
        self,
        memory: _Memory,
        stored: int,
        seen: dict[str, Alert],
        bypass_done: int | None,
    ) -> bool:
        """Write what ``memory`` judged since ``stored`` (the cursor, the states, the
        pending findings as alerts, the unwrap check's position) in one transaction;
        then respond to what was raised. False if another process moved the cursor."""
        assert memory.position is not None  # noqa: S101 - only a judged memory is written
        findings = memory.pending
        # Everything that needs no database is done before the write transaction: it
        # holds the write lock that the ledger's group commit (every request) waits for.
        states = self._dump(memory, memory.dirty)
        names = self.flags.current().names
        now = self.now_us()
        with write_transaction(self.engine) as connection:
            wall = wall_us()
            if not advance_cursor(
                connection,
                CURSOR,
                stored,
                memory.position,
                self.owner,
                wall + LEASE_US,
                now,
                wall,
            ):
                # Moved on by another process, or its lease: nothing was written.
                self._memory = _Memory()
                return False
            save_states(connection, states, now)
            raised = self.alerts.upsert(connection, findings, now, names, seen)
            if bypass_done is not None and self.bypass is not None:
                self.bypass.advance(connection, bypass_done, self.owner, now)
            pruned = self._prune_kin(connection, memory.judged_us)
        if pruned is not None:
            self._pruned_us = pruned
        memory.stored = memory.position
        memory.lease_until_us = wall + LEASE_US
        memory.pending = []
        memory.dirty = set()
        memory.written_at = time.monotonic()
        # What this process wrote is read again before it is next updated (its
        # ``updated_us`` guards the update).
        for finding in findings:
            memory.alerts.pop(finding.dedup_key, None)
        if raised and self.on_raised is not None:
            try:
                self.on_raised(raised)
            except Exception as error:  # noqa: BLE001 - responses fail apart from detection
                log.error("responding to alerts failed: %s", type(error).__name__)
        return True

    def _prune_kin(self, connection: Connection, judged_us: int) -> int | None:
        """Forget the kin tokens writes replaced that no entry still to be judged can be
        related to: the oldest is a rebuilt engine's replay, ``REPLAY_US`` before the
        latest judged. Timed by the entries, as the detectors' windows are, so an engine
        that fell behind keeps what the entries it has yet to judge need. At most once
        per ``PRUNE_EVERY_US``; the time pruned at, or None if not now."""
        if self.kinship is None or not judged_us:
            return None
        if self._pruned_us is not None and judged_us - self._pruned_us < PRUNE_EVERY_US:
            return None
        self.kinship.prune(connection, judged_us - REPLAY_US)
        return judged_us

    def _due(self, memory: _Memory) -> list[Access]:
        edge = self.now_us() - self.kin_grace_us
        return [access for access in memory.deferred if access.at_us <= edge]

    def _judge_kin(self, memory: _Memory, context: Context) -> list[Finding]:
        """Picks of kin whose grace is over: explained now (a booking made just after the
        look-up explains it) or judged."""
        due = self._due(memory)
        if not due:
            return []
        waiting = {id(access) for access in due}
        memory.deferred = [a for a in memory.deferred if id(a) not in waiting]
        findings: list[Finding] = []
        for access in self.explainer.explain(due):
            state = memory.accounts.get(access.account or "")
            if state is None or access.explained:
                continue
            try:
                findings.extend(self.detectors.judge_kin(access, state, context))
            except Exception as error:  # noqa: BLE001 - as for every detector
                log.error("snooping failed on entry %d: %s", access.position, type(error).__name__)
        return findings

    def _renew(self, position: int) -> None:
        """Keep the lease while idle, so that no other process rebuilds for nothing."""
        renewed = None
        with write_transaction(self.engine) as connection:
            again = read_cursor(connection, CURSOR, lock=True)
            if again.position == position and again.owner == self.owner:
                renewed = wall_us() + LEASE_US
                write_cursor(connection, CURSOR, position, self.owner, renewed, self.now_us())
        if renewed is not None and self._memory.stored == position:
            self._memory.lease_until_us = renewed

    def _observe(
        self, access: Access, memory: _Memory, context: Context, dirty: set[str]
    ) -> list[Finding]:
        subject = access.account
        watched = stepped_up(access)
        if watched is not None:
            self._watch(memory, watched, access)
            return []
        if access.tag.startswith("detect:"):
            return []
        altered = tamper_finding(access)
        if altered is not None:
            return [altered]
        if access.tag in REFUSED_SIGN_INS:
            # The sender's, not the named account's: counted per source network.
            return memory.sign_ins.observe(access, context.offset_us)
        spotted = decoy_finding(access, context.decoys)
        if subject is None:
            return [spotted] if spotted is not None else []
        state = memory.accounts[subject]
        role_name = state.profile.role or access.role or ""
        role = memory.roles.get(role_name)
        if role is None and role_name:
            role = memory.roles[role_name] = RoleBaseline()
        dirty.add(subject)
        if role_name:
            dirty.add(f"role:{role_name}")
        if not memory.observed_since_us:
            memory.observed_since_us = access.at_us
            dirty.add("global")
        try:
            found = self.detectors.observe(access, state, role, context)
            return [spotted, *found] if spotted is not None else found
        except Exception as error:  # noqa: BLE001 - one detector's bug must not stop the rest
            log.error("a detector failed on entry %d: %s", access.position, type(error).__name__)
            return [
                Finding(
                    "detector-failure",
                    Severity.HIGH,
                    str(access.at_us // DAY_US),
                    f"a detector failed ({type(error).__name__}) on ledger entry "
                    f"{access.position}: that entry may not have been judged",
                    access,
                )
            ]

    # --- entries ---------------------------------------------------------------------------

    def _read(self, start: int, end: int) -> list[Access]:
        with self._buffer_lock:
            local = [self._buffer.get(position) for position in range(start, end)]
        if all(data is not None for data in local):
            return [Access.parse(start + i, data) for i, data in enumerate(local) if data]
        return [Access.parse(seq, data) for seq, data in self.audit.entries(start, end)]

    def _rebuild(self, position: int) -> _Memory:
        """Fresh memory at ``position``: stored profiles, and the last day's windows
        replayed from the ledger (findings of the replay are dropped: they were raised)."""
        memory = _Memory(position=position, stored=position)
        with read_transaction(self.engine) as connection:
            stored = load_states(connection, ["global"])
        memory.observed_since_us = int(stored.get("global", {}).get("observed_since_us", 0))
        if position == 0:
            return memory
        last = list(self.audit.entries(position - 1, position))
        if not last:
            return memory
        since = Access.parse(position - 1, last[0][1]).at_us - REPLAY_US
        tables = self.audit.tables
        with read_transaction(self.engine) as connection:
            first = connection.execute(
                select(func.min(tables.entry.c.seq)).where(
                    tables.entry.c.ledger == self.audit.name, tables.entry.c.at_us >= since
                )
            ).scalar()
        start = max(int(first if first is not None else position), position - REPLAY_MAX)
        context = self._context(memory)
        for chunk in range(start, position, BATCH):
            accesses = self._judge(
                [
                    Access.parse(seq, data)
                    for seq, data in self.audit.entries(chunk, min(position, chunk + BATCH))
                ]
            )
            self._load(memory, accesses)
            accesses = self._date_care(memory, accesses)
            for access in accesses:
                if access.tag in REFUSED_SIGN_INS:
                    memory.sign_ins.observe(access, context.offset_us, live=False)
                    continue
                watched = stepped_up(access)
                if watched is not None:
                    self._watch(memory, watched, access)
                    continue
                if access.account is None:
                    continue
                state = memory.accounts[access.account]
                role = memory.roles.get(state.profile.role or "")
                try:
                    self.detectors.observe(access, state, role, context, live=False)
                except Exception:  # noqa: BLE001, S112 - a replay error only narrows a window
                    continue
                if _kin_pick(access):
                    # Judged again (an alert is never raised twice: it is the same alert).
                    memory.deferred.append(access)
        return memory

    def _judge(self, accesses: list[Access]) -> list[Access]:
        """Entries marked with whether care explains them and what kin they are."""
        explained = self.explainer.explain(accesses)
        return self.kinship.relate(explained) if self.kinship is not None else explained

    def _date_care(self, memory: _Memory, accesses: list[Access]) -> list[Access]:
        """The entries of accounts watched after a step-up (or stepped up in this batch)
        that care another account made alone explains, with when that care was first
        written (``Access.care_made_us``): the watch counts what care made since it
        began explains. One query, and only when such an entry is in the batch."""
        if not accesses:
            return accesses
        since = accesses[0].at_us - WATCH_US
        watched = {
            account
            for account, state in memory.accounts.items()
            if state.recent.watch is not None and state.recent.watch[1] >= since
        }
        watched.update(
            login
            for a in accesses
            if (w := stepped_up(a)) is not None
            for login in _logins(memory, w)
        )
        wanted = {
            row for a in accesses if a.made_alone and a.account in watched for row in a.made_alone
        }
        if not wanted:
            return accesses
        first = self.explainer.first_written(wanted)
        return [
            replace(a, care_made_us=min(first.get(row, a.at_us) for row in a.made_alone))
            if a.made_alone and a.account in watched
            else a
            for a in accesses
        ]

    def _watch(self, memory: _Memory, account: str, access: Access) -> None:
        """A step-up paused ``account``'s sessions: watch it, and every other login of its
        practitioner (a person who passed a step-up reads on through another login)."""
        for login in _logins(memory, account):
            state = memory.accounts.get(login)
            if state is not None:
                by = None if login == account else account
                self.detectors.stepped_up(state, access.at_us, access.position, by)

    def _load(self, memory: _Memory, accesses: Sequence[Access]) -> None:
        """Profiles (and role baselines) of the accounts in ``accesses`` into memory."""
        missing = {
            subject
            for a in accesses
            if a.tag not in REFUSED_SIGN_INS
            and (subject := a.account or stepped_up(a))
            and subject not in memory.accounts
        }
        roles = {a.role for a in accesses if a.role and a.role not in memory.roles}
        if not missing and not roles:
            return
        with read_transaction(self.engine) as connection:
            logins = _logins_of_people(connection, missing)
            # Every login of a person together: a step-up of one watches the others.
            missing.update(
                name
                for names in logins.values()
                if len(names) > 1
                for name in names
                if name not in memory.accounts
            )
            stored = load_states(
                connection, [*(m for m in missing if m), *(f"role:{r}" for r in roles if r)]
            )
        for account in missing:
            if account:
                profile = Profile.from_json(stored.get(account, {}))
                memory.accounts[account] = AccountState(profile)
        for role in roles:
            if role:
                memory.roles[role] = RoleBaseline.from_json(stored.get(f"role:{role}", {}))
        self._link_people(memory, logins)

    @staticmethod
    def _link_people(memory: _Memory, logins: dict[str, tuple[str, ...]]) -> None:
        """Each account in memory of a practitioner with more than one login to their
        person's windows (``signals.Person``). A login added since keeps the windows as
        they are and counts from now on."""
        for practitioner, names in logins.items():
            if len(names) < 2:
                continue
            person = memory.people.get(practitioner)
            if person is None:
                person = memory.people[practitioner] = Person(names)
            person.link(names, memory.accounts)

    def _dump(self, memory: _Memory, dirty: set[str]) -> dict[str, str]:
        """The changed states, as the JSON to store."""
        states: dict[str, dict[str, object]] = {}
        for subject in dirty:
            if subject == "global":
                states[subject] = {"observed_since_us": memory.observed_since_us}
            elif subject.startswith("role:"):
                states[subject] = memory.roles[subject.removeprefix("role:")].to_json()
            else:
                states[subject] = memory.accounts[subject].profile.to_json()
        return {subject: json.dumps(value) for subject, value in states.items()}

    def _context(self, memory: _Memory) -> Context:
        flags = self.flags.current()
        return Context(
            decoys=flags.decoys,
            vips=flags.vips,
            observed_since_us=memory.observed_since_us,
            created_us=flags.created_us,
            offset_us=self.offset_us,
            kin_shares=self.kinship.current().shares if self.kinship is not None else {},
        )


def _logins(memory: _Memory, account: str) -> tuple[str, ...]:
    """``account`` and every other login of its practitioner in memory."""
    state = memory.accounts.get(account)
    if state is None or state.person is None:
        return (account,)
    return (account, *(login for login in state.person.logins if login != account))


def _logins_of_people(
    connection: Connection, accounts: Collection[str]
) -> dict[str, tuple[str, ...]]:
    """Every login (``staff:<username>``) of each practitioner one of ``accounts`` names,
    by practitioner: one query."""
    usernames = sorted(a.removeprefix("staff:") for a in accounts if a and a.startswith("staff:"))
    if not usernames:
        return {}
    practitioners = select(staff_account.c.practitioner_id).where(
        staff_account.c.username.in_(usernames), staff_account.c.practitioner_id.is_not(None)
    )
    rows = connection.execute(
        select(staff_account.c.practitioner_id, staff_account.c.username).where(
            staff_account.c.practitioner_id.in_(practitioners)
        )
    ).all()
    found: dict[str, list[str]] = {}
    for practitioner, username in rows:
        found.setdefault(str(practitioner), []).append(f"staff:{username}")
    return {practitioner: tuple(sorted(names)) for practitioner, names in found.items()}


def stepped_up(access: Access) -> str | None:
    """The account (or client app) a step-up response entry paused, as the detectors
    follow it (``staff:<username>``, ``client:<id>``); None for any other entry."""
    if access.tag != Tag.DETECT_STEP_UP or access.principal != RESPONDER:
        return None
    account, client = access.detail.get("account"), access.detail.get("client")
    if account:
        return f"staff:{account}"
    return f"client:{client}" if client else None


def _kin_pick(access: Access) -> bool:
    return bool(access.kin) and access.attempted and not access.explained and access.picked
