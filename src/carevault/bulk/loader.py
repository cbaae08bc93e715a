"""Loading records in bulk through the gate, as the system, in batches.

Each batch is one gate write: validated records, sealed under their patients' keys,
indexed, their care relationships derived by the rules of ``domain/care.py`` (the
system states facts: a visit it loads registers the patient at the visit's clinic),
with one audit entry per patient of the batch, committed in the same transaction as
the import's progress. A batch with a record the store refuses (a reference to a
patient who is not there) is split until the refused record stands alone; the rest
commits, and the refusal is reported with its line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from itertools import islice

from sqlalchemy import Connection

from carevault.bulk.checking import Checker, Outcome, typed
from carevault.bulk.collector import collector_paused
from carevault.bulk.journal import Journal
from carevault.bulk.sources import Item, phase
from carevault.db import write_transaction
from carevault.fhir.outcome import FhirError
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import AccessDenied, Caller, ClinicRequired, Gate, PatientRequired
from carevault.vault.records import VaultError
from carevault.vault.writer import Put

IMPORT_CALLER = Caller(principal="system:import", purpose="HOPERAT")
BATCH_SIZE = 2000
#: What the store refuses about one record, not about the import as a whole (a
#: client's ``$import`` may also send a patient of no clinic when it has several, or a
#: record that does not name its patient as ``Patient/[id]``).
_RECORD_ERRORS = (VaultError, AccessDenied, ClinicRequired, PatientRequired)


@dataclass
class Counts:
    accepted: int = 0
    rejections: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Position:
    """Where a file's batches are recorded: its digest, and the item the batch starts at."""

    file_sha256: str
    journal: Journal


Advance = Callable[[int], None]


def _reason(error: Exception) -> str:
    if isinstance(error, FhirError):
        return "; ".join(issue.diagnostics for issue in error.issues)[:2000]
    return str(error)[:2000] or type(error).__name__


class Loader:
    """Writes items through the gate in batches; see the module docstring."""

    def __init__(
        self,
        gate: Gate,
        now_us: Callable[[], int],
        *,
        caller: Caller = IMPORT_CALLER,
        checker: Checker | None,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        """``checker`` validates records (None: the records are CareVault's own, from
        the simulator, and only their types are checked)."""
        self.gate = gate
        self.now_us = now_us
        self.caller = caller
        self.checker = checker
        self.batch_size = batch_size
        #: The system's load: one audit entry per patient of a batch. A client's
        #: (``$import``, ``caller`` with an actor): one entry per record, as any write.
        self._per_patient = caller.actor is None

    @property
    def reads_again(self) -> bool:
        """Whether the checks read each NDJSON line again, in processes of their own: the
        writer then needs no exact numbers (``sources.parse_line``)."""
        return self.checker is not None and self.checker.in_processes

    def load(
        self,
        items: Iterable[Item],
        *,
        start: int = 0,
        position: Position | None = None,
        pending: frozenset[int] = frozenset(),
        advance: Advance | None = None,
    ) -> Counts:
        """Load ``items`` (the ``start``-th item of their source first). ``pending``:
        lines of the first batch already committed by an earlier, interrupted run."""
        counts = Counts()
        done = start
        batches = _batches(items, self.batch_size)
        with collector_paused():
            batch = next(batches, None)
            verdicts = self._check(batch, pending)
        while batch is not None:
            # Each batch with the collector paused (``bulk/collector.py``), the batch
            # itself let go before it runs again (it then walks only the next batch).
            with collector_paused():
                # The next batch is checked (in the worker processes) while this one is
                # written.
                following = next(batches, None)
                following_verdicts = self._check(following, pending)
                done += len(batch)
                accepted, refused = self._write(batch, verdicts, pending, done, position)
                size = len(batch)
                batch, verdicts = following, following_verdicts
            counts.accepted += accepted
            counts.rejections.update(refused)
            if advance is not None:
                advance(size)
        return counts

    def _write(
        self,
        batch: list[Item],
        verdicts: list[Future[list[Outcome]]],
        pending: frozenset[int],
        done: int,
        position: Position | None,
    ) -> tuple[int, dict[int, str]]:
        """Write a checked batch: (records accepted, refused lines with their reasons)."""
        writes: list[tuple[int, Put]] = []
        refused: dict[int, str] = {}
        wanted = [item for item in batch if item.line not in pending]
        for item, found in zip(wanted, _collect(verdicts), strict=True):
            if isinstance(found, str):
                refused[item.line] = found
            else:
                assert item.resource is not None  # noqa: S101 - only resources pass
                rt = RESOURCE_TYPES[item.resource["resourceType"]]
                # Only the system's own load may hand the gate what it worked out
                # already; a client's records (``$import``) are worked out by the gate.
                derived = found if self.caller.actor is None else None
                put = Put(rt, item.resource["id"], item.resource, derived=derived)
                writes.append((item.line, put))
        # Stable: within a phase the source's order stands.
        writes.sort(key=lambda pair: phase(pair[1].resource_type.name))
        return self._commit(writes, refused, done, position), refused

    def _check(
        self, batch: list[Item] | None, pending: frozenset[int]
    ) -> list[Future[list[Outcome]]]:
        if batch is None:
            return []
        wanted = [item for item in batch if item.line not in pending]
        zone = self.gate.vault.zone
        if self.checker is None:
            done: Future[list[Outcome]] = Future()
            done.set_result([typed(item.resource, item.refused, zone) for item in wanted])
            return [done]
        return self.checker.submit(wanted, zone)

    def _commit(
        self,
        writes: list[tuple[int, Put]],
        refused: dict[int, str],
        done: int,
        position: Position | None,
    ) -> int:
        """The batch in one transaction if the store takes all of it; split otherwise."""
        if not writes:
            self._record(position, refused, done)
            return 0

        def finish(connection: Connection) -> None:
            if position is not None:
                position.journal.advance(
                    connection,
                    position.file_sha256,
                    now_us=self.now_us(),
                    accepted=len(writes),
                    rejections=refused,
                    items_done=done,
                )

        try:
            self.gate.write(
                self.caller,
                [put for _, put in writes],
                within=finish,
                per_patient=self._per_patient,
            )
        except _RECORD_ERRORS as error:
            if len(writes) == 1:
                refused[writes[0][0]] = _reason(error)
                self._record(position, refused, done)
                return 0
            committed: set[int] = set()
            middle = len(writes) // 2
            self._split(writes[:middle], refused, committed, position)
            self._split(writes[middle:], refused, committed, position)
            self._record(position, refused, done)
            return len(committed)
        return len(writes)

    def _split(
        self,
        writes: list[tuple[int, Put]],
        refused: dict[int, str],
        committed: set[int],
        position: Position | None,
    ) -> None:
        """Halves in load order until what the store refuses stands alone; each part that
        commits records its lines, so a resumed run does not write them again."""
        lines = {line for line, _ in writes}

        def note(connection: Connection) -> None:
            if position is not None:
                position.journal.advance(
                    connection,
                    position.file_sha256,
                    now_us=self.now_us(),
                    accepted=len(lines),
                    rejections={},
                    items_done=None,
                    pending_lines=frozenset(committed | lines),
                )

        try:
            self.gate.write(
                self.caller, [put for _, put in writes], within=note, per_patient=self._per_patient
            )
        except _RECORD_ERRORS as error:
            if len(writes) == 1:
                refused[writes[0][0]] = _reason(error)
                return
            middle = len(writes) // 2
            self._split(writes[:middle], refused, committed, position)
            self._split(writes[middle:], refused, committed, position)
            return
        committed |= lines

    def _record(self, position: Position | None, refused: dict[int, str], done: int) -> None:
        if position is None:
            return
        with write_transaction(position.journal.engine) as connection:
            position.journal.advance(
                connection,
                position.file_sha256,
                now_us=self.now_us(),
                accepted=0,
                rejections=refused,
                items_done=done,
            )


def _collect(futures: list[Future[list[Outcome]]]) -> Iterator[Outcome]:
    for future in futures:
        yield from future.result()


def _batches(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
