"""Durable appends with group commit: the audit trail the gate hands its events to.

Events that arrive together are appended in one transaction (one fsync), which is
what lets a busy server keep an entry per access without queueing behind the disk.
``record`` returns only once its events are committed; if the commit fails, or
does not happen within ``timeout`` seconds, it raises ``AuditUnavailable`` and the
caller must not release data (fail closed). A request's rider (``trail.Rider``: the
release budget's record of the patients it gives) is written in the same group commit,
so a request that must record something besides its events pays no commit of its own.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from threading import get_ident

from sqlalchemy import Connection

from carevault.db import storage_problem, write_transaction
from carevault.ledger.events import AuditEvent
from carevault.ledger.store import LedgerEntry, LedgerStore
from carevault.ledger.trail import AuditUnavailable, Declined, Rider

log = logging.getLogger("carevault.ledger")

#: While a request is served, the number of audit events it has recorded (a list shared
#: with the worker threads the request runs in: they see the same list through their
#: copied context). The web layer uses it to record a refusal no one else recorded.
_RECORDED: ContextVar[list[int] | None] = ContextVar("carevault_recorded", default=None)


@contextmanager
def counting_records() -> Iterator[list[int]]:
    """Count the audit events recorded in this context (and threads started from it)."""
    holder: list[int] = []
    token = _RECORDED.set(holder)
    try:
        yield holder
    finally:
        _RECORDED.reset(token)


def _counted(events: int) -> None:
    holder = _RECORDED.get()
    if holder is not None:
        holder.append(events)


#: The writer whose submits made in this context, in this thread, wait to be queued (see
#: ``LedgerWriter.gathering``); a context copied into another thread does not gather.
_GATHERING: ContextVar[tuple[LedgerWriter, int, list[int]] | None] = ContextVar(
    "carevault_gathering", default=None
)


@dataclass
class _Request:
    entries: list[LedgerEntry]
    done: Future[tuple[int, int]]
    rider: Rider | None = None


_STOP = _Request([], Future())


class LedgerWriter:
    """Implements ``AuditTrail`` over a ``LedgerStore``."""

    def __init__(self, store: LedgerStore, *, max_batch: int = 2000, timeout: float = 10.0) -> None:
        self.store = store
        self.max_batch = max_batch
        self.timeout = timeout
        self._queue: queue.Queue[_Request] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        #: Submits gathered on the event loop, queued together (``gathering``).
        self._gathered: list[_Request] = []
        #: Told of each group commit (first position, entries), after it is durable; a
        #: listener must be quick (the detection engine only queues) and never raises here.
        self.listeners: list[Callable[[int, Sequence[LedgerEntry]], None]] = []

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._closed:
                raise AuditUnavailable("the audit ledger is shut down")
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name=f"ledger-{self.store.name}", daemon=True
                )
                self._thread.start()

    def record(
        self,
        events: Sequence[AuditEvent],
        connection: Connection | None = None,
        rider: Rider | None = None,
    ) -> None:
        if not events:
            return
        entries = [
            LedgerEntry(event.at_us, event.canonical(), event.patient_pseudonym, event.principal)
            for event in events
        ]
        if connection is not None:
            try:
                if rider is not None:
                    self.store.lock_head(connection)
                    rider.ride(connection)
                self.store.append(connection, entries)
            except Declined:
                raise
            except Exception as error:
                raise AuditUnavailable("the audit ledger could not be written") from error
            # Not ``rider.committed()``: the caller's transaction may still roll back.
            _counted(len(entries))
            return
        self.append(entries, rider)
        _counted(len(entries))

    def submit(self, events: Sequence[AuditEvent], rider: Rider | None = None) -> Future[None]:
        """Queue ``events`` (and ``rider``) for the next group commit without waiting.

        The future completes once they are durable (the rider told, the request's count
        of records kept), or fails with ``AuditUnavailable`` or the rider's ``Declined``.
        Whatever the events describe must not leave before it completes: the caller
        waits for it where waiting costs no thread (the event loop), which is the only
        reason to use this rather than ``record``. It never completes by itself after
        ``timeout``: the waiter bounds its wait (and fails closed when it gives up).
        """
        settled: Future[None] = Future()
        if not events:
            settled.set_result(None)
            return settled
        entries = [
            LedgerEntry(event.at_us, event.canonical(), event.patient_pseudonym, event.principal)
            for event in events
        ]
        # The request's count lives in its context, which the writer thread does not share.
        holder = _RECORDED.get()

        def settle(done: Future[tuple[int, int]]) -> None:
            error = done.exception()
            if error is not None:
                settled.set_exception(
                    error
                    if isinstance(error, AuditUnavailable | Declined)
                    else AuditUnavailable("the audit ledger could not be written")
                )
                return
            try:
                if rider is not None:
                    rider.committed()
            finally:
                if holder is not None:
                    holder.append(len(entries))
                settled.set_result(None)

        self._ensure_thread()
        done: Future[tuple[int, int]] = Future()
        done.add_done_callback(settle)
        request = _Request(entries, done, rider)
        gathering = _GATHERING.get()
        if gathering is not None and gathering[0] is self and gathering[1] == get_ident():
            with self._lock:
                self._gathered.append(request)
            gathering[2].append(1)
        else:
            self._queue.put(request)
        return settled

    @contextmanager
    def gathering(self, schedule: Callable[[Callable[[], None]], object]) -> Iterator[None]:
        """While inside, this thread's ``submit``s in this context are held back, and
        queued together when ``schedule`` (the event loop's ``call_soon``) runs the
        release it is given (the end of the loop's turn).

        The event loop prepares its reads one after another: queued one by one, the
        writer woke for the first and committed it nearly alone while the loop prepared
        the next (two entries a commit, each commit a durable write and its CPU). Queued
        at the end of the loop's turn, the reads of one turn share a commit. Holding
        entries back never releases anything earlier: their futures complete only
        once they are durable."""
        held: list[int] = []
        token = _GATHERING.set((self, get_ident(), held))
        try:
            yield
        finally:
            _GATHERING.reset(token)
            if held:
                # A release per block that held something back: the first of a turn
                # queues everything gathered, the others find nothing (no flag shared
                # between event loops, whose scheduled calls may never run if one stops).
                schedule(self._release_gathered)

    def _release_gathered(self) -> None:
        with self._lock:
            gathered, self._gathered = self._gathered, []
        for request in gathered:
            self._queue.put(request)

    def append(self, entries: Sequence[LedgerEntry], rider: Rider | None = None) -> tuple[int, int]:
        """Queue ``entries`` (and ``rider``) for the next group commit; wait until durable."""
        self._ensure_thread()
        done: Future[tuple[int, int]] = Future()
        self._queue.put(_Request(list(entries), done, rider))
        try:
            positions = done.result(timeout=self.timeout)
        except (AuditUnavailable, Declined):
            raise
        except Exception as error:
            raise AuditUnavailable("the audit ledger could not be written in time") from error
        if rider is not None:
            rider.committed()
        return positions

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            size = len(first.entries)
            while size < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    self._queue.put(_STOP)
                    break
                batch.append(more)
                size += len(more.entries)
            self._commit(batch)

    def _commit(self, batch: list[_Request]) -> None:
        try:
            with write_transaction(self.store.engine) as connection:
                batch = self._ride(connection, batch)
                entries = [entry for item in batch for entry in item.entries]
                first, _ = self.store.append(connection, entries)
        except Exception as error:
            # A rider that declined has had its answer already.
            waiting = [item for item in batch if not item.done.done()]
            log.error(
                "ledger %s: append of %d entries failed: %s; their requests are refused",
                self.store.name,
                sum(len(item.entries) for item in waiting),
                storage_problem(error) or type(error).__name__,
            )
            for item in waiting:
                item.done.set_exception(AuditUnavailable("the audit ledger could not be written"))
            return
        position = first
        for item in batch:
            item.done.set_result((position, position + len(item.entries)))
            position += len(item.entries)
        for listener in self.listeners if entries else ():
            try:
                listener(first, entries)
            except Exception as error:  # noqa: BLE001 - the ledger never waits on a listener
                log.error("ledger %s: a listener failed: %s", self.store.name, type(error).__name__)

    def _ride(self, connection: Connection, batch: list[_Request]) -> list[_Request]:
        """Each request's rider, in order, in the group commit's transaction (after the
        head is locked); the requests whose rider declined are told so and left out.
        Any other failure of a rider fails the whole commit (fail closed)."""
        if all(item.rider is None for item in batch):
            return batch
        self.store.lock_head(connection)
        kept: list[_Request] = []
        for item in batch:
            if item.rider is not None:
                try:
                    item.rider.ride(connection)
                except Declined as declined:
                    item.done.set_exception(declined)
                    continue
            kept.append(item)
        return kept

    def close(self) -> None:
        self._release_gathered()
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(_STOP)
            thread.join(timeout=self.timeout)
