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

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from itertools import islice

from sqlalchemy import Connection

from carevault.access.registrations import TooManyAttempts
from carevault.bulk.checking import Checker, Checks, Outcome, received, typed
from carevault.bulk.collector import Sweeper, collector_paused
from carevault.bulk.journal import Journal
from carevault.bulk.sources import Item, phase
from carevault.db import write_transaction
from carevault.fhir.derived import clinic_targets, patient_targets
from carevault.fhir.outcome import FhirError
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import (
    AccessDenied,
    Caller,
    ClinicRequired,
    Gate,
    PatientRequired,
    ScopeDenied,
    SubsetWouldErase,
)
from carevault.vault.records import VaultError
from carevault.vault.writer import Put

IMPORT_CALLER = Caller(principal="system:import", purpose="HOPERAT")
BATCH_SIZE = 2000
#: What the store refuses about one record, not about the import as a whole (a
#: client's ``$import`` may also send a patient of no clinic when it has several, or a
#: record that does not name its patient as ``Patient/[id]``, or a view of a record,
#: labelled SUBSETTED, that would erase what it left out).
#: A line refused while its client waits on the registration throttle (TooManyAttempts)
#: is rejected like any refused line: the batch's other lines go on.
_RECORD_ERRORS = (
    VaultError,
    AccessDenied,
    ClinicRequired,
    PatientRequired,
    SubsetWouldErase,
    TooManyAttempts,
)


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
#: Batches taken from the sources and sent to be checked before the writer needs them.
AHEAD = 3


@dataclass
class Part:
    """One source of an import (a file, an ``$import`` body): its items from the
    ``start``-th on, where its batches are recorded, the lines of its first batch already
    committed by an earlier, interrupted run (``pending``), and what loading it gave."""

    items: Iterable[Item]
    start: int = 0
    position: Position | None = None
    pending: frozenset[int] = frozenset()
    #: Called before the part's first batch is written.
    begin: Callable[[], None] | None = None
    counts: Counts = field(default_factory=Counts)
    begun: bool = False
    #: Items done so far (``start`` at first).
    done: int = -1

    def __post_init__(self) -> None:
        if self.done < 0:
            self.done = self.start


#: A batch of a part as the loader takes it: (part, its items, whether it is the part's
#: last); (part, None, True) for a part with nothing left to load.
Piece = tuple[Part, list[Item] | None, bool]


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
        hold_collector: bool = False,
        ahead: int = AHEAD,
    ) -> None:
        """``checker`` validates records (None: the records are CareVault's own, from
        the simulator, and only their types are checked). ``hold_collector``: the cyclic
        collector paused from the first batch to the last, a sweep every few
        batches, rather than a collection after each batch, which walked the next batch,
        read already (20-40 µs a record); only in a process of its own (``carevault
        import``), never in a server process, whose request threads would run without it.
        ``ahead``: batches sent to be checked before the writer needs them."""
        self.gate = gate
        self.now_us = now_us
        self.caller = caller
        self.checker = checker
        self.batch_size = batch_size
        self.hold_collector = hold_collector
        self.ahead = max(1, ahead)
        #: The system's load: one audit entry per patient of a batch. A client's
        #: (``$import``, ``caller`` with an actor): one entry per record, as any write.
        self._per_patient = caller.actor is None
        #: (type, id) of the records whose own lines this load refused (``_unmoored``),
        #: and those an earlier run over the same sources refused (``remember``).
        self._refused: set[tuple[str, str]] = set()
        #: The current batch's refused lines that added to ``_refused``: recorded with
        #: their refusal, for a resumed run.
        self._refused_lines: dict[int, tuple[str, str]] = {}

    def remember(self, records: Iterable[tuple[str, str]]) -> None:
        """Records (type, id) an earlier, interrupted run over the same sources refused
        to change (``Journal.refused_records``): this run refuses the lines naming them
        as that run would have."""
        self._refused.update(records)

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
        part = Part(items, start=start, position=position, pending=pending)
        self.load_parts([part], advance=advance)
        return part.counts

    def load_parts(
        self,
        parts: Iterable[Part],
        *,
        advance: Advance | None = None,
        finished: Callable[[Part], None] | None = None,
    ) -> None:
        """Load each part in turn; ``finished`` is told of each once all its batches are
        written.

        The next ``ahead`` batches are checked while the current one is written, across
        parts too: a part's first batches are checked while the previous part's last is
        written, so an import of many files (one per type, as Bulk Data lays them out)
        keeps the checking processes and the writer busy at once instead of waiting at
        every file. More than one batch ahead, since batches differ: a file of patients
        takes longer to check than to write, one of slots the other way round (one batch
        ahead, the writer waited 1.1 s of a 7.4 s import for its checks). A part's
        ``begin`` runs before its first batch is written; parts are taken from ``parts``
        as their batches are, ahead of the writer.

        The collector is paused for each batch, or from the first batch to the last with
        ``hold_collector`` (``bulk/collector.py``)."""
        sweeper = Sweeper() if self.hold_collector else None
        with collector_paused() if sweeper is not None else nullcontext():
            pieces = self._pieces(parts)
            # Batches taken and sent to be checked, in order, with their futures.
            ahead: deque[tuple[Piece, list[Checks]]] = deque()

            def fill() -> None:
                while len(ahead) < self.ahead:
                    piece = next(pieces, None)
                    if piece is None:
                        return
                    ahead.append((piece, self._check(piece)))

            with collector_paused():
                fill()
            try:
                while ahead:
                    (part, batch, last), verdicts = ahead.popleft()
                    if not part.begun:
                        part.begun = True
                        if part.begin is not None:
                            part.begin()
                    if batch is None:
                        # A part with nothing left to load.
                        with collector_paused():
                            fill()
                        if finished is not None:
                            finished(part)
                        continue
                    # Each batch with the collector paused, the batch itself let go before it
                    # runs again (reference counting frees it; a collection then walks only
                    # the next batch).
                    with collector_paused():
                        # The next batches, of this part or the next, are checked (in the
                        # worker processes) while this one is written.
                        fill()
                        part.done += len(batch)
                        accepted, refused = self._write(
                            batch, verdicts, part.pending, part.done, part.position
                        )
                        size = len(batch)
                        del batch, verdicts
                    if sweeper is not None:
                        sweeper.batch_done()
                    part.counts.accepted += accepted
                    part.counts.rejections.update(refused)
                    if advance is not None:
                        advance(size)
                    if last and finished is not None:
                        finished(part)
            finally:
                # Stopped early (a write failed, or the consumer raised): the checks
                # sent ahead are not wanted, and a pool shared beyond this load must
                # not spend itself on them.
                for _, waiting in ahead:
                    for task in waiting:
                        task.cancel()

    def _pieces(self, parts: Iterable[Part]) -> Iterator[Piece]:
        """Each part's batches, the last marked so; (part, None, True) for a part with
        nothing left to load."""
        for part in parts:
            batches = _batches(part.items, self.batch_size)
            current = next(batches, None)
            if current is None:
                yield part, None, True
                continue
            for following in batches:
                yield part, current, False
                current = following
            yield part, current, True

    def _write(
        self,
        batch: list[Item],
        verdicts: list[Checks],
        pending: frozenset[int],
        done: int,
        position: Position | None,
    ) -> tuple[int, dict[int, str]]:
        """Write a checked batch: (records accepted, refused lines with their reasons)."""
        writes: list[tuple[int, Put]] = []
        refused: dict[int, str] = {}
        self._refused_lines = {}
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
        return self._commit(writes, refused, done, position, pending), refused

    def _check(self, piece: Piece) -> list[Checks]:
        part, batch, _ = piece
        if batch is None:
            return []
        wanted = [item for item in batch if item.line not in part.pending]
        zone = self.gate.vault.zone
        if self.checker is None:
            return [Checks.done([typed(item.resource, item.refused, zone) for item in wanted])]
        return self.checker.submit(wanted, zone)

    def _commit(
        self,
        writes: list[tuple[int, Put]],
        refused: dict[int, str],
        done: int,
        position: Position | None,
        pending: frozenset[int] = frozenset(),
    ) -> int:
        """The batch in one transaction if the store takes all of it; split otherwise.
        ``pending``: the batch's lines an earlier, interrupted run committed already."""
        writes = self._unmoored(writes, refused)
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
                    records=self._refused_lines,
                )

        try:
            self._write_through(writes, finish)
        except _RECORD_ERRORS as error:
            if len(writes) == 1:
                refused[writes[0][0]] = _reason(error)
                self._note_refused(writes[0][0], writes[0][1], error)
                self._record(position, refused, done)
                return 0
            # The lines an earlier run committed stay recorded as committed: each part
            # that commits records them with its own, and a run stopped here again must
            # not write them a second time.
            committed: set[int] = set(pending)
            middle = len(writes) // 2
            self._split(writes[:middle], refused, committed, position)
            self._split(writes[middle:], refused, committed, position)
            self._record(position, refused, done)
            return len(committed - pending)
        return len(writes)

    def _write_through(
        self, writes: list[tuple[int, Put]], within: Callable[[Connection], None]
    ) -> None:
        self.gate.write(
            self.caller,
            [put for _, put in writes],
            within=within,
            per_patient=self._per_patient,
            # A line refused as another clinic's patient's twin is counted against the
            # client's registration throttle once, when it stands alone, not once for
            # every part of the batch that held it while the batch was split.
            count_probes=len(writes) == 1,
        )

    def _split(
        self,
        writes: list[tuple[int, Put]],
        refused: dict[int, str],
        committed: set[int],
        position: Position | None,
    ) -> None:
        """Halves in load order until what the store refuses stands alone; each part that
        commits records its lines, so a resumed run does not write them again. In load
        order, a patient's line is settled before the records naming it are tried (its
        phase comes first, and the left half is settled before the right)."""
        writes = self._unmoored(writes, refused)
        if not writes:
            return
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
            self._write_through(writes, note)
        except _RECORD_ERRORS as error:
            if len(writes) == 1:
                refused[writes[0][0]] = _reason(error)
                self._note_refused(writes[0][0], writes[0][1], error)
                return
            middle = len(writes) // 2
            self._split(writes[:middle], refused, committed, position)
            self._split(writes[middle:], refused, committed, position)
            return
        committed |= lines

    def _note_refused(self, line: int, put: Put, error: Exception) -> None:
        """Remember a record the store refused this load as one it may not change
        (another clinic's patient, another patient's visit): its id is someone else's."""
        if isinstance(error, AccessDenied) and not isinstance(error, ScopeDenied):
            self._refuse(line, put)

    def _refuse(self, line: int, put: Put) -> None:
        record = (put.resource_type.name, put.resource_id)
        self._refused.add(record)
        self._refused_lines[line] = record

    def _unmoored(
        self, writes: list[tuple[int, Put]], refused: dict[int, str]
    ) -> list[tuple[int, Put]]:
        """``writes`` without the records that name, as their patient or where they
        belong (their visit, room or clinic), a record whose own line this load refused;
        those are refused in turn.

        The id names this load's patient (or visit) only if the load wrote it. Refused,
        the id is someone else's record: a patient a desk of another clinic made under
        the id a migration would use, before it ran. The load's visits and results
        naming that id were written into that patient's chart, which the desk's clinic
        opened to itself with one booking (adversary round 62). Nothing is read: the
        refusals are this load's own, kept for as long as it runs."""
        if not self._refused:
            return writes
        kept: list[tuple[int, Put]] = []
        for line, put in writes:
            named = _names_refused(put, self._refused)
            if named is None:
                kept.append((line, put))
            else:
                refused[line] = (
                    f"names {named[0]}/{named[1]}, whose own line this import refused: the "
                    "record stored under that id is not the one the import sends"
                )
                self._refuse(line, put)
        return kept

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
                records=self._refused_lines,
            )


def _names_refused(put: Put, refused: set[tuple[str, str]]) -> tuple[str, str] | None:
    """The first record of ``refused`` that ``put`` names as its patient or where it
    belongs (what the writer follows to say whose it is and where); None if none."""
    rt = put.resource_type
    derived = put.derived
    patients = derived.patients if derived is not None else patient_targets(rt, put.resource)
    clinics = derived.clinics if derived is not None else clinic_targets(rt, put.resource)
    for target in (*patients, *(pair for path in clinics for pair in path)):
        if target in refused:
            return target
    return None


def _collect(tasks: list[Checks]) -> Iterator[Outcome]:
    # The tasks no checking process has reached are taken back from the batch's end
    # while the process works from its start, until the two meet.
    for task in reversed(tasks):
        if not task.take_back():
            break
    for task in tasks:
        for found in task.result():
            yield received(found)


def _batches(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
