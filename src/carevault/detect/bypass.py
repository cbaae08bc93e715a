"""Gate bypass: data keys unwrapped (the key service's own ledger) for a patient with
no access entry by the same principal in the audit ledger around that moment. The gate
records every access it opens a key for, so an unwrap without one was made by something
that is not the gate: a process on the host with the key service's credentials."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select

from carevault.access.breakglass import BREAK_GLASS_KEY_ID
from carevault.db import read_transaction
from carevault.detect.alerts import Alert
from carevault.detect.model import HOUR_US, Access, Finding, Severity
from carevault.detect.state import read_cursor, write_cursor
from carevault.keys.service import (
    CREDENTIALS_KEY_ID,
    DIRECTORY_KEY_ID,
    INDEX_KEY_ID,
    ROTATION_PRINCIPAL,
    not_patients_keys,
)
from carevault.ledger.events import Tag
from carevault.ledger.store import LedgerStore

CURSOR = "unwrap"
DETECTOR = "gate-bypass"
#: A bypass alert is critical from this many patients' keys on, in one batch of unwraps
#: or gathered over several (the unwraps of an hour are judged as they age).
CRITICAL_PATIENTS = 3
#: Unwraps younger than this are left for the next batch: their audit entry may still
#: be on its way to the disk.
LAG_US = 5_000_000
#: An audit entry this close to the unwrap accounts for it.
MATCH_US = 120_000_000
BATCH = 5000
#: Keys that are no one patient's: the directory's, staff credentials', the blind-index
#: key (every process unwraps it at start) and the break-glass log's.
SHARED_KEYS = frozenset({DIRECTORY_KEY_ID, CREDENTIALS_KEY_ID, INDEX_KEY_ID, BREAK_GLASS_KEY_ID})
#: A KEK rotation unwraps every data key to re-wrap it. Its unwraps are accounted for by
#: the rotation's start entry in the audit ledger, if one was written in this long before.
ROTATION_US = 24 * HOUR_US


def evidence_start_us(alert: Alert) -> int | None:
    """When a gate-bypass alert's unwraps began: the start of the hour its findings are
    kept by (``Finding.period``, the last part of the dedup key); None for another
    detector's alert."""
    if alert.detector != DETECTOR or not alert.dedup_key:
        return None
    hour = alert.dedup_key.rpartition("|")[2]
    return int(hour) * HOUR_US if hour.isdigit() else None


@dataclass(frozen=True)
class Unwrap:
    position: int
    at_us: int
    key_id: str
    principal: str


class BypassCheck:
    def __init__(
        self, engine: Engine, unwrap: LedgerStore, audit: LedgerStore, now_us: Callable[[], int]
    ) -> None:
        self.engine = engine
        self.unwrap = unwrap
        self.audit = audit
        self.now_us = now_us
        #: (position, time) of the first unwrap that ``check`` left for being too young.
        self._waiting: tuple[int, int] | None = None

    def position(self) -> int:
        with read_transaction(self.engine) as connection:
            return read_cursor(connection, CURSOR).position

    def progress(self) -> tuple[int, int]:
        """(how many unwrap entries are judged, the unwrap ledger's head)."""
        return self.position(), self.unwrap.head()[0]

    def pending(self) -> bool:
        return self.ready(self.progress())

    def ready(self, progress: tuple[int, int]) -> bool:
        """Whether ``check`` has anything to judge: unwraps not judged yet, unless the
        first of them is one ``check`` already found too young and still is (while
        every read unwraps a key, the last few seconds of unwraps are always waiting:
        they are not read again at every batch for nothing)."""
        start, head = progress
        if head <= start:
            return False
        waiting = self._waiting
        return waiting is None or waiting[0] != start or waiting[1] <= self.now_us() - LAG_US

    def check(self, progress: tuple[int, int] | None = None) -> tuple[list[Finding], int | None]:
        """Findings for the unwraps ready to judge, and the position to advance to.
        ``progress``: ``progress()`` as the caller has just read it (no second read)."""
        start, head = progress if progress is not None else self.progress()
        if head <= start:
            return [], None
        ready: list[Unwrap] = []
        end = start
        edge = self.now_us() - LAG_US
        for seq, data in self.unwrap.entries(start, min(head, start + BATCH)):
            document = json.loads(data)
            at = int(document.get("at_us", 0))
            # Too young to judge: its audit entry may still be on its way. (An entry from
            # another clock, far ahead, is judged now rather than hold up the rest.)
            if edge < at <= edge + 2 * LAG_US + MATCH_US:
                self._waiting = (seq, at)
                break
            end = seq + 1
            key = str(document.get("key_id", ""))
            if key and key not in SHARED_KEYS:
                ready.append(
                    Unwrap(seq, int(document["at_us"]), key, str(document.get("principal")))
                )
        if end == start:
            return [], None
        return self._judge(ready), end

    def _judge(self, unwraps: list[Unwrap]) -> list[Finding]:
        if not unwraps:
            return []
        # Keys of CareVault's own other than the shared ones (an incident's sealed words,
        # an erasure's, an export's files) are no patient's: the key store says which.
        others = not_patients_keys(self.unwrap.engine, {u.key_id for u in unwraps})
        unwraps = [u for u in unwraps if u.key_id not in others]
        if not unwraps:
            return []
        low = min(u.at_us for u in unwraps) - MATCH_US
        high = max(u.at_us for u in unwraps) + MATCH_US
        keys = sorted({u.key_id for u in unwraps})
        entry = self.audit.tables.entry
        #: (patient, principal) → when the gate recorded that principal's access to them.
        seen: dict[tuple[str, str], list[int]] = {}
        with read_transaction(self.engine) as connection:
            for chunk in range(0, len(keys), 500):
                rows = connection.execute(
                    select(entry.c.subject, entry.c.actor, entry.c.at_us).where(
                        entry.c.ledger == self.audit.name,
                        entry.c.subject.in_(keys[chunk : chunk + 500]),
                        entry.c.at_us >= low,
                        entry.c.at_us <= high,
                    )
                ).all()
                for subject, actor, at in rows:
                    seen.setdefault((subject, actor or ""), []).append(int(at))
            # A search opens candidates to match them and returns only some: the gate
            # records the search under the principal, not each candidate it let go.
            principals = sorted({u.principal for u in unwraps})
            active: dict[str, list[int]] = {}
            for chunk in range(0, len(principals), 500):
                recent = connection.execute(
                    select(entry.c.actor, entry.c.at_us).where(
                        entry.c.ledger == self.audit.name,
                        entry.c.actor.in_(principals[chunk : chunk + 500]),
                        entry.c.at_us >= low,
                        entry.c.at_us <= high,
                    )
                ).all()
                for actor, at in recent:
                    active.setdefault(actor or "", []).append(int(at))
        rotations = (
            self._rotations(low - ROTATION_US, high)
            if any(u.principal == ROTATION_PRINCIPAL for u in unwraps)
            else []
        )
        groups: dict[tuple[str, int], list[Unwrap]] = {}
        for unwrap in unwraps:
            recorded = seen.get((unwrap.key_id, unwrap.principal), []) + active.get(
                unwrap.principal, []
            )
            if any(abs(at - unwrap.at_us) <= MATCH_US for at in recorded):
                continue
            if unwrap.principal == ROTATION_PRINCIPAL and any(
                unwrap.at_us - ROTATION_US <= at <= unwrap.at_us + MATCH_US for at in rotations
            ):
                continue
            groups.setdefault((unwrap.principal, unwrap.at_us // HOUR_US), []).append(unwrap)
        found = []
        for (principal, hour), items in groups.items():
            patients = tuple(sorted({u.key_id for u in items}))
            severity = Severity.CRITICAL if len(patients) >= CRITICAL_PATIENTS else Severity.HIGH
            found.append(
                Finding(
                    DETECTOR,
                    severity,
                    str(hour),
                    f"{len(patients)} patients' data keys unwrapped by {principal} with no "
                    f"access recorded at the gate (unwrap-ledger entries {items[0].position}"
                    f"-{items[-1].position})",
                    Access(
                        position=-1,
                        at_us=items[-1].at_us,
                        tag="keys:data-key:unwrapped",
                        outcome="success",
                        principal=principal,
                        role="system",
                    ),
                    patients,
                    critical_at=CRITICAL_PATIENTS,
                )
            )
        return found

    def _rotations(self, low: int, high: int) -> list[int]:
        """When KEK rotations were started (audit entries) between ``low`` and ``high``.
        Asked only when the rotation's principal unwrapped keys, which is rare."""
        entry = self.audit.tables.entry
        started = Tag.KEY_ROTATION_STARTED.value
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(entry.c.at_us, entry.c.entry).where(
                    entry.c.ledger == self.audit.name,
                    entry.c.subject.is_(None),
                    entry.c.at_us >= low,
                    entry.c.at_us <= high,
                )
            )
            return [int(at) for at, data in rows if json.loads(data).get("tag") == started]

    def advance(self, connection: Connection, position: int, owner: str, now_us: int) -> None:
        write_cursor(connection, CURSOR, position, owner, 0, now_us)
