"""What the ledger benchmark appends, where it appends it, and the raw-hashing baseline.

Entries are the canonical bytes of real ``fhir:resource:read`` audit events (checked
byte for byte against ``AuditEvent.canonical``), made from a template because building
ten million events through dataclasses would take longer than appending them.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from time import perf_counter, thread_time

from sqlalchemy import Connection, Engine, MetaData

from carevault.db import make_engine, temporary_database
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.store import LedgerEntry, LedgerStore
from carevault.ledger.tables import ledger_tables
from carevault.ledger.verifier import EMPTY_ROOT, root_of

PG_ADMIN_URL = os.environ.get(
    "CAREVAULT_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
EPOCH_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
PATIENTS = 50_000
STAFF = 400
# Sorted keys, compact separators: the shape ``AuditEvent.canonical`` produces.
_TEMPLATE = (
    b'{"at_us":%d,"clinic_ids":["%s"],"outcome":"success","patient_pseudonym":"%s",'
    b'"principal":"%s","resource_id":"%d","resource_type":"Observation","role":"clinician",'
    b'"tag":"fhir:resource:read","v":1}'
)
# Random-looking but reproducible, like the vault's ``secrets.token_hex(16)``.
_PSEUDONYMS = [
    hashlib.sha256(b"patient %d" % patient).hexdigest()[:32] for patient in range(PATIENTS)
]
_PSEUDONYM_BYTES = [pseudonym.encode() for pseudonym in _PSEUDONYMS]
_STAFF = [f"staff-{staff:04d}" for staff in range(STAFF)]
_STAFF_BYTES = [staff.encode() for staff in _STAFF]
_CLINIC_BYTES = [b"clinic-%02d" % clinic for clinic in range(12)]


def _event(index: int) -> tuple[int, int, int, bytes]:
    patient = (index * 2_654_435_761) % PATIENTS
    staff = (index * 40_503) % STAFF
    at_us = EPOCH_US + index * 1_000
    return (
        at_us,
        patient,
        staff,
        _TEMPLATE
        % (
            at_us,
            _CLINIC_BYTES[patient % 12],
            _PSEUDONYM_BYTES[patient],
            _STAFF_BYTES[staff],
            100_000_000 + index,
        ),
    )


def event_bytes(index: int) -> bytes:
    """The canonical bytes of audit event number ``index`` (deterministic)."""
    return _event(index)[3]


def entries(start: int, count: int) -> list[LedgerEntry]:
    """Entries ``start`` .. ``start + count - 1``, with their indexed subject and actor."""
    made: list[LedgerEntry] = []
    for index in range(start, start + count):
        at_us, patient, staff, data = _event(index)
        made.append(LedgerEntry(at_us, data, _PSEUDONYMS[patient], _STAFF[staff]))
    return made


def check_template() -> int:
    """Prove the template is what the gate would write; return the mean entry size."""
    for index in (0, 1, 77, 123_456, 9_999_999):
        at_us, patient, staff, data = _event(index)
        event = AuditEvent(
            tag=Tag.FHIR_READ,
            outcome=Outcome.SUCCESS,
            at_us=at_us,
            principal=_STAFF[staff],
            role="clinician",
            clinic_ids=(f"clinic-{patient % 12:02d}",),
            resource_type="Observation",
            resource_id=str(100_000_000 + index),
            patient_pseudonym=_PSEUDONYMS[patient],
        )
        if event.canonical() != data:
            raise AssertionError(f"template differs from AuditEvent.canonical at {index}")
    return sum(len(event_bytes(index)) for index in range(1000)) // 1000


class Counter:
    """Thread-safe tally of appends (calls and entries) a store has made."""

    def __init__(self) -> None:
        self.calls = 0
        self.entries = 0
        self._lock = threading.Lock()

    def add(self, count: int) -> None:
        with self._lock:
            self.calls += 1
            self.entries += count


class CountingStore(LedgerStore):
    """A ``LedgerStore`` that counts its appends, to see how big group commits get."""

    def __init__(self, engine: Engine, name: str, prefix: str = "bench") -> None:
        metadata = MetaData()
        tables = ledger_tables(metadata, prefix)
        metadata.create_all(engine)
        super().__init__(engine, tables, name)
        self.counter = Counter()

    def append(self, connection: Connection, entries: Sequence[LedgerEntry]) -> tuple[int, int]:
        result = super().append(connection, entries)
        self.counter.add(len(entries))
        return result


def sqlite_url(directory: str, name: str) -> str:
    return f"sqlite:///{directory}/{name}.db"


def postgres_database(admin_url: str = PG_ADMIN_URL) -> AbstractContextManager[str]:
    """A PostgreSQL database of the benchmark's own, dropped afterwards."""
    return temporary_database(admin_url, "carevault_bench")


def open_store(url: str, name: str) -> CountingStore:
    return CountingStore(make_engine(url), name)


class RawHasher:
    """SHA-256 of the same leaves and interior nodes, in a tight loop: the physical limit.

    Leaf hashes are folded in complete subtrees of ``CHUNK`` leaves as soon as one
    fills; only the hashing is timed. Its root must equal the ledger's, which checks
    the ledger against an independent computation.
    """

    CHUNK = 1 << 16

    def __init__(self) -> None:
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self.leaves = 0
        self._chunk_roots: list[bytes] = []
        self._pending: list[bytes] = []

    def add(self, data: Sequence[bytes]) -> None:
        sha = hashlib.sha256
        started, started_cpu = perf_counter(), thread_time()
        pending = self._pending
        pending.extend([sha(b"\x00" + item).digest() for item in data])
        while len(pending) >= self.CHUNK:
            level = pending[: self.CHUNK]
            del pending[: self.CHUNK]
            while len(level) > 1:
                level = [
                    sha(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level), 2)
                ]
            self._chunk_roots.append(level[0])
        self.seconds += perf_counter() - started
        self.cpu_seconds += thread_time() - started_cpu
        self.leaves += len(data)

    def snapshot(self) -> tuple[bytes, float, float, int]:
        """(MTH of every leaf so far, seconds and CPU seconds of hashing, hashes computed).

        Full chunks are complete subtrees, so the tree over them and the partial
        last chunk (each as one leaf of an upper tree) has the RFC's shape.
        """
        started, started_cpu = perf_counter(), thread_time()
        tops = self._chunk_roots + ([root_of(self._pending)] if self._pending else [])
        root = root_of(tops) if tops else EMPTY_ROOT
        seconds = self.seconds + perf_counter() - started
        cpu = self.cpu_seconds + thread_time() - started_cpu
        return root, seconds, cpu, max(2 * self.leaves - 1, 0)
