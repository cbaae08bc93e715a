"""The audit trail port: what the gate and the access module hand their events to."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future
from functools import partial
from typing import Protocol

from sqlalchemy import Connection

from carevault.ledger.events import AuditEvent


class AuditUnavailable(RuntimeError):
    """The audit record could not be made durable: the caller must fail closed."""


class Declined(Exception):
    """A rider refused its request (e.g. a release budget spent): the request's events
    are not recorded and this exception reaches the request; the other requests of the
    same group commit go on."""


class Rider(Protocol):
    """A request's own write that must be durable together with its audit events, in
    the same transaction (so no second commit, and never one without the other).

    ``ride`` runs inside that transaction, after the ledger's head is locked (so riders
    are serialised with every other append, across processes) and before the events are
    appended. It may raise ``Declined``, but only before it has written anything.
    ``committed`` is called in the request's thread once the transaction is durable
    (never for a transaction the caller still holds open: it may yet roll back)."""

    def ride(self, connection: Connection) -> None: ...

    def committed(self) -> None: ...


class AuditTrail(Protocol):
    """Records audit events in the tamper-evident ledger.

    Contract: ``record`` returns only once every event is durable (committed with
    fsync). Given a ``connection``, the events are appended inside that
    transaction, so they commit together with the write they describe. Given a
    ``rider``, its write commits with the events, or neither does; if it declines,
    ``Declined`` is raised and nothing is recorded. On any other failure it raises
    ``AuditUnavailable`` and the caller must not release data.
    """

    def record(
        self,
        events: Sequence[AuditEvent],
        connection: Connection | None = None,
        rider: Rider | None = None,
    ) -> None: ...

    def submit(self, events: Sequence[AuditEvent], rider: Rider | None = None) -> Future[None]:
        """``record`` without the wait: the future completes once the events are durable
        (or fails as ``record`` would raise). Nothing the events describe may leave
        before it completes."""
        ...


log = logging.getLogger("carevault.ledger")


def submit_unwaited(trail: AuditTrail, events: Sequence[AuditEvent], what: str) -> None:
    """``trail.submit`` for events no request waits on (what a process noticed on its
    way: a row altered in the database, a witness's refusal): a failure to record them
    is logged, naming ``what`` (never the events, which may name a patient)."""
    trail.submit(events).add_done_callback(partial(_unrecorded, what))


def _unrecorded(what: str, written: Future[None]) -> None:
    error = written.exception()
    if error is not None:
        log.error("%s was not recorded: %s", what, type(error).__name__)
