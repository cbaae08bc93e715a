"""Durable appends with group commit: the audit trail the gate hands its events to.

Events that arrive together are appended in one transaction (one fsync), which is
what lets a busy server keep an entry per access without queueing behind the disk.
``record`` returns only once its events are committed; if the commit fails, or
does not happen within ``timeout`` seconds, it raises ``AuditUnavailable`` and the
caller must not release data (fail closed).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from sqlalchemy import Connection

from carevault.db import storage_problem, write_transaction
from carevault.ledger.events import AuditEvent
from carevault.ledger.store import LedgerEntry, LedgerStore
from carevault.ledger.trail import AuditUnavailable

log = logging.getLogger("carevault.ledger")


@dataclass
class _Request:
    entries: list[LedgerEntry]
    done: Future[tuple[int, int]]


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

    def record(self, events: Sequence[AuditEvent], connection: Connection | None = None) -> None:
        if not events:
            return
        entries = [
            LedgerEntry(event.at_us, event.canonical(), event.patient_pseudonym, event.principal)
            for event in events
        ]
        if connection is not None:
            try:
                self.store.append(connection, entries)
            except Exception as error:
                raise AuditUnavailable("the audit ledger could not be written") from error
            return
        self.append(entries)

    def append(self, entries: Sequence[LedgerEntry]) -> tuple[int, int]:
        """Queue ``entries`` for the next group commit; wait until durable."""
        self._ensure_thread()
        done: Future[tuple[int, int]] = Future()
        self._queue.put(_Request(list(entries), done))
        try:
            return done.result(timeout=self.timeout)
        except AuditUnavailable:
            raise
        except Exception as error:
            raise AuditUnavailable("the audit ledger could not be written in time") from error

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
        entries = [entry for item in batch for entry in item.entries]
        try:
            with write_transaction(self.store.engine) as connection:
                first, _ = self.store.append(connection, entries)
        except Exception as error:
            log.error(
                "ledger %s: append of %d entries failed: %s; their requests are refused",
                self.store.name,
                len(entries),
                storage_problem(error) or type(error).__name__,
            )
            for item in batch:
                item.done.set_exception(AuditUnavailable("the audit ledger could not be written"))
            return
        position = first
        for item in batch:
            item.done.set_result((position, position + len(item.entries)))
            position += len(item.entries)
        for listener in self.listeners:
            try:
                listener(first, entries)
            except Exception as error:  # noqa: BLE001 - the ledger never waits on a listener
                log.error("ledger %s: a listener failed: %s", self.store.name, type(error).__name__)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(_STOP)
            thread.join(timeout=self.timeout)
