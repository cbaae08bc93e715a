"""Checking records before they are written, in worker processes beside the writer.

Validation (the strict walk, the content rules, the FHIR model) and what the writer
works out from a record alone (its search terms, sensitivity marker and categories,
``fhir/derived.py``) need nothing from the database: worker processes do both for the
next batch while the gate writes the current one. A worker gets resources (an NDJSON
line as its bytes, which it reads again as the writer read it: bytes cost far less to
send than the objects they make) and returns for each why it is refused or what was
worked out, never keys and never anything it decrypted: it holds no key and opens
nothing.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import sys
import threading
import types
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from datetime import tzinfo
from typing import Any

from carevault.bulk.collector import Sweeper, collector_paused
from carevault.bulk.shape import Shapes
from carevault.bulk.sources import Item, read_again
from carevault.domain.care import CareSource
from carevault.domain.categories import DataCategory
from carevault.fhir import content
from carevault.fhir.care import CareFacts
from carevault.fhir.contained import check_references, may_refer_locally
from carevault.fhir.content import InputLimits
from carevault.fhir.derived import Derived, Targets, derive
from carevault.fhir.outcome import FhirError, Issue
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.fhir.validate import validate_resource

#: Records per task given to a worker process.
_TASK = 250
#: This process's compiled checks, per set of limits (they cache per model and value).
_SHAPES: dict[InputLimits, Shapes] = {}
#: Tasks between two sweeps in a checking process (``_in_worker``).
_WORKER_SWEEP_EVERY = 128
#: A checking process's collections (None in any other process).
_SWEEPER: Sweeper | None = None


def verdict(
    resource: dict[str, Any] | None,
    refused: str | None,
    limits: InputLimits,
    compiled: bool = True,
    raw: bytes | None = None,
) -> str | None:
    """None if ``resource`` may be written, or why not (naming rules, never values).
    ``raw``: the NDJSON line it was read from, if it was.

    The compiled check (``bulk/shape.py``) passes most records; what it is not sure
    of goes through the full validation, which gives the reasons. ``compiled=False``:
    the full validation only (what imports did before; benchmarks compare the two)."""
    if resource is None:
        return refused or "refused"
    name = resource.get("resourceType")
    if not isinstance(name, str) or name not in RESOURCE_TYPES:
        shown = name if isinstance(name, str) and name.isalnum() else "?"
        return f"CareVault does not hold {shown[:40]} resources"
    if compiled:
        shapes = _SHAPES.get(limits)
        if shapes is None:
            shapes = _SHAPES[limits] = Shapes(limits)
        # What a record may hold is checked too, or an import would write what REST
        # refuses (``content.check_record_rules``): the compiled check keeps the
        # government-number rule in its own walk, and a directory record's references
        # are checked here.
        rules: list[Issue] = []
        content.check_directory_references(resource, name, rules)
        if not rules and shapes.certainly_valid(resource):
            return _broken_references(resource, name, raw)
    try:
        validate_resource(resource, name, limits)
    except FhirError as error:
        return "; ".join(issue.diagnostics for issue in error.issues)[:2000]
    return _broken_references(resource, name, raw)


def _broken_references(resource: dict[str, Any], name: str, raw: bytes | None) -> str | None:
    """Why ``resource`` is refused if a local reference in it names nothing contained in
    it (R4 ref-1), as the gate refuses a write (``Gate._refuse_broken_references``): a
    load is the system's, so the record as sent is the record as stored. A line with no
    ``#`` at all, spelt or escaped, holds no local reference, which its bytes tell sooner
    than serialising the record again (bench/results/bulk_import-ab-ref1.md)."""
    if "contained" not in resource:
        if raw is not None:
            if b"#" not in raw and b"\\u0023" not in raw:
                return None
        elif not may_refer_locally(resource):
            return None
    issues = check_references(resource, name)
    return "; ".join(issue.diagnostics for issue in issues)[:2000] if issues else None


#: What a checking process is sent of one item: its resource or why it is refused; or,
#: for an NDJSON line, the line's bytes and the resource's id (``sources.read_again``).
Sent = tuple[dict[str, Any] | bytes | None, str | None]
#: What checking an item gives: why it is refused, or what the writer needs worked out.
Outcome = str | Derived
#: ``CareFacts`` as it crosses: its source as its value, its organizations as a tuple.
CareWire = tuple[str, tuple[str, ...], int | None, int | None, str | None, tuple[str, ...]]
#: An outcome as it crosses back from a checking process: a Derived as a plain tuple, its
#: categories as their values. A NamedTuple and an enum member are pickled as calls to
#: their classes, which cost the writer four times what the rest of the outcome did
#: (8.7 against 2.1 µs a record to unpickle).
Wire = tuple[
    tuple[tuple[str, str, bool], ...],
    str | None,
    tuple[str, ...],
    Targets,
    tuple[Targets, ...],
    tuple[tuple[str, int | None, int | None], ...],
    CareWire | None,
]
#: What a batch's futures give: outcomes, or their wire form (``received`` reads both).
Found = Outcome | Wire
_CATEGORIES = {category.value: category for category in DataCategory}
_SOURCES = {source.value: source for source in CareSource}


def _sendable(found: Outcome) -> str | Wire:
    if isinstance(found, str):
        return found
    terms, marker, categories, patients, clinics, dates, care = found
    return (
        terms,
        marker,
        tuple(category.value for category in categories),
        patients,
        clinics,
        dates,
        None
        if care is None
        else (
            care.source.value,
            care.practitioner_ids,
            care.starts_us,
            care.ends_us,
            care.referred_to,
            tuple(care.named_organizations),
        ),
    )


def received(found: Found) -> Outcome:
    """The outcome of ``found``, as a checking process or this one gave it."""
    if isinstance(found, str | Derived):
        return found
    terms, marker, categories, patients, clinics, dates, care = found
    return Derived(
        terms,
        marker,
        frozenset([_CATEGORIES[value] for value in categories]),
        patients,
        clinics,
        dates,
        None
        if care is None
        else CareFacts(_SOURCES[care[0]], care[1], care[2], care[3], care[4], frozenset(care[5])),
    )


def typed(resource: dict[str, Any] | None, refused: str | None, zone: tzinfo) -> Outcome:
    """Without validation (records CareVault generated itself): only the type is
    checked, and what the writer needs worked out (``fhir/derived.py``)."""
    if resource is None:
        return refused or "refused"
    name = resource.get("resourceType")
    if isinstance(name, str) and name in RESOURCE_TYPES:
        return derive(RESOURCE_TYPES[name], resource, zone)
    shown = name if isinstance(name, str) and name.isalnum() else "?"
    return f"CareVault does not hold {shown[:40]} resources"


def outcome(
    resource: dict[str, Any] | None,
    refused: str | None,
    limits: InputLimits,
    zone: tzinfo,
    compiled: bool = True,
    validate: bool = True,
    raw: bytes | None = None,
) -> Outcome:
    """Why ``resource`` is refused (``verdict``), or its terms, marker and categories
    (``fhir/derived.py``) for the writer. ``validate=False``: ``typed``."""
    if not validate:
        return typed(resource, refused, zone)
    reason = verdict(resource, refused, limits, compiled, raw)
    if reason is not None:
        return reason
    assert resource is not None  # noqa: S101 - a verdict of None says so
    return derive(RESOURCE_TYPES[resource["resourceType"]], resource, zone)


def _sent(item: Item) -> Sent:
    if item.raw is not None and item.resource is not None:
        # The id made for a line without one; a line's own id (whatever it is) it keeps.
        given = item.resource.get("id")
        return (item.raw, given if isinstance(given, str) else None)
    return (item.resource, item.refused)


def _outcomes(
    sent: Sequence[Sent], limits: InputLimits, zone: tzinfo, compiled: bool, validate: bool
) -> list[Outcome]:
    found: list[Outcome] = []
    with collector_paused():
        _check_sent(sent, limits, zone, compiled, validate, found)
    return found


def _sent_back(
    sent: Sequence[Sent], limits: InputLimits, zone: tzinfo, compiled: bool, validate: bool
) -> list[str | Wire]:
    """A checking process's task: ``_outcomes`` in their wire form."""
    try:
        return [_sendable(item) for item in _outcomes(sent, limits, zone, compiled, validate)]
    finally:
        if _SWEEPER is not None:
            _SWEEPER.batch_done()


def _in_worker() -> None:
    """A checking process's start: its collector paused for good (what it holds between
    tasks is its modules and compiled checks; a task's records are freed by reference
    counting once its outcomes are sent), with a sweep of the young generations every
    ``_WORKER_SWEEP_EVERY`` tasks (``bulk/collector.py``)."""
    global _SWEEPER
    gc.disable()
    _SWEEPER = Sweeper(_WORKER_SWEEP_EVERY)


def _check_sent(
    sent: Sequence[Sent],
    limits: InputLimits,
    zone: tzinfo,
    compiled: bool,
    validate: bool,
    found: list[Outcome],
) -> None:
    for resource, detail in sent:
        if not isinstance(resource, bytes):
            found.append(outcome(resource, detail, limits, zone, compiled, validate))
            continue
        again = read_again(resource, detail)
        # A line that reads otherwise here than in the writer is refused, never passed.
        found.append(
            "the line did not read the same twice"
            if again is None
            else outcome(again, None, limits, zone, compiled, validate, resource)
        )


@contextmanager
def _main_left_out() -> Iterator[None]:
    """Processes spawned meanwhile do not run this process's main module again: a spawned
    process imports the parent's ``__main__`` before its task (``carevault``'s script: the
    whole command line and what it imports, 0.4 s of CPU of a 4 s check), and a checking
    process needs only this module, which its tasks name. Only while processes are
    started (in this thread, at the pool's first task): the main module is put back."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


def _started() -> bool:
    """A checking process's first task: it has started and imported the checks. Each
    type's checks are compiled as its first record comes (``bulk/shape.py``), not all
    ahead: compiling every type CareVault holds took 0.27 s, during which the writer
    checked the first batches itself, and an import of one file needs one type's. With
    them compiled ahead, the writer spent 0.12-0.17 s more CPU on a 43,841-record import
    (``bench/results/bulk_import-ab-lazy.md``)."""
    return True


#: What ``_outcomes`` is called with for one task.
_Arguments = tuple[Sequence[Sent], InputLimits, tzinfo, bool, bool]


class Checks:
    """One task of a batch's checks. Its outcomes (``result``) come from the checking
    process that took it, or from this process when the writer needs them before any
    process has: the writer then checks them itself rather than wait (a file of patients
    takes longer to check than to write, and a writer that waited left its core idle).

    A task made while the checking processes are still starting is held here (``held``)
    and sent once one has started (``send``): sent at once, it would wait in the pool's
    queue, where it can no longer be taken back, for the second or so a process takes
    to start (the writer waited 0.7 s so for the first batch it needed)."""

    def __init__(self, future: Future[Sequence[Found]], arguments: _Arguments | None) -> None:
        self._future = future
        self._arguments = arguments
        #: Checked in this process, no checking process having taken it in time.
        self.taken_back = False
        self._taken: Sequence[Found] = ()

    @classmethod
    def held(cls, arguments: _Arguments) -> Checks:
        """A task not sent to a checking process yet."""
        return cls(Future(), arguments)

    def send(self, pool: ProcessPoolExecutor) -> Future[Sequence[Found]] | None:
        """Give a held task to the checking processes, unless it was taken back or is
        not wanted any more: the pool's future, if it was given."""
        if self._arguments is None or not self._future.set_running_or_notify_cancel():
            return None
        self._future = pool.submit(_sent_back, *self._arguments)
        return self._future

    @classmethod
    def done(cls, outcomes: Sequence[Found]) -> Checks:
        """Outcomes worked out already."""
        future: Future[Sequence[Found]] = Future()
        future.set_result(outcomes)
        return cls(future, None)

    def take_back(self) -> bool:
        """Check here, now, a task no checking process has taken yet: whether this task's
        outcomes were worked out here, now or before (never for a task not wanted)."""
        if (
            not self.taken_back
            and self._arguments is not None
            and not self._future.cancelled()
            and self._future.cancel()
        ):
            self.taken_back = True
            self._taken = _outcomes(*self._arguments)
        return self.taken_back

    def result(self) -> Sequence[Found]:
        """The outcomes: a task no checking process has taken yet is taken back and
        checked here."""
        if self.take_back():
            return self._taken
        return self._future.result()

    def cancel(self) -> None:
        """Not wanted after all (a load stopped early): a process that has not taken it
        never will."""
        self._future.cancel()


class Checker:
    """Outcomes for batches of records, in ``workers`` processes (0: in this one)."""

    def __init__(
        self, limits: InputLimits, workers: int, *, compiled: bool = True, validate: bool = True
    ) -> None:
        """``validate=False``: records CareVault generated itself (seeding), of which only
        the type is checked; the processes then only work out what the writer needs."""
        self.limits = limits
        self.compiled = compiled
        self.validate = validate
        self._pool: ProcessPoolExecutor | None = None
        self._started: Future[bool] | None = None
        #: Tasks made while the processes were starting, to send once one has.
        self._held: list[Checks] = []
        #: Tasks given to the processes, and how many of those are done (counted by
        #: the pool's thread, or by this one as it takes one back): all done, closing
        #: need not wait for the processes.
        self._sent = 0
        self._ended = 0
        self._counting = threading.Lock()
        if workers > 0:
            # Forked workers would inherit the database connections and keys of the
            # parent: spawned ones start clean and import only what validation needs.
            self._pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_in_worker,
            )
            # A spawned process takes a second or two to start and import the checks:
            # until one has, batches are checked here rather than waited for. The pool
            # starts its processes as this first task is submitted.
            with _main_left_out():
                self._started = self._pool.submit(_started)

    @property
    def in_processes(self) -> bool:
        """Whether NDJSON lines are sent as bytes to checking processes, which read them
        again with exact numbers (``sources.parse_line``)."""
        return self._pool is not None

    def wait_started(self) -> None:
        """Return once a checking process has started (at once with none): every batch
        submitted after goes to the processes."""
        if self._started is not None:
            self._started.result()

    def submit(self, items: Sequence[Item], zone: tzinfo) -> list[Checks]:
        """Start checking; the tasks' outcomes, concatenated, follow ``items`` (each read
        with ``received``). ``zone``: the vault's, which date terms are worked out in."""
        if self._pool is None:
            return [
                Checks.done(
                    [
                        outcome(
                            item.resource,
                            item.refused,
                            self.limits,
                            zone,
                            self.compiled,
                            self.validate,
                            item.raw,
                        )
                        for item in items
                    ]
                )
            ]
        tasks = [
            Checks.held(
                (
                    [_sent(item) for item in items[start : start + _TASK]],
                    self.limits,
                    zone,
                    self.compiled,
                    self.validate,
                )
            )
            for start in range(0, len(items), _TASK)
        ]
        if self._started is not None and not self._started.done():
            # Held until a process has started; the writer takes back what it needs
            # before then (as a checking process would, from the lines' bytes).
            self._held.extend(tasks)
            return tasks
        self._started = None
        for task in [*self._held, *tasks]:
            future = task.send(self._pool)
            if future is not None:
                self._sent += 1
                future.add_done_callback(self._task_ended)
        self._held.clear()
        return tasks

    def _task_ended(self, _: Future[Sequence[Found]]) -> None:
        with self._counting:
            self._ended += 1

    def close(self) -> None:
        pool = self._pool
        if pool is None:
            return
        self._pool = None
        for task in self._held:
            task.cancel()
        self._held.clear()
        if self._started is None and self._ended < self._sent:
            # A task is still being checked (a load stopped early): the processes
            # finish it and leave when told to.
            pool.shutdown(wait=True, cancel_futures=True)
            return
        # Nothing of the processes' is wanted any more: no batch ever went to them (the
        # writer checked every one while they started), or every task sent is done.
        # Waiting for a spawned process to finish starting cost a small import half a
        # second (25 Synthea bundles: 0.44 s checked in the writer, 0.9 s in all), and
        # for a process to wind down its interpreter 0.17 s of a 5 s import, so they are
        # stopped instead: a checking process holds no key and nothing to keep.
        # Stopped before the pool is told to shut down: told first, a process could
        # start winding down (and be waited for after all) before it was stopped.
        # The pool's own thread then reaps them; they are not also waited for here,
        # beside it: of two threads waiting for one child, the one the system does not
        # answer is told there is no such child, and its process object says "alive"
        # until the other has recorded the exit (a CI run saw one so, just after close).
        processes = list((pool._processes or {}).values())
        for process in processes:
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        for process in processes:
            process.join()


def default_workers() -> int:
    """Checking processes beside the writer: the cores but the writer's own."""
    return max(1, (os.cpu_count() or 1) - 1)
