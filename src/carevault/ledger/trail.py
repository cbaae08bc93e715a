"""The audit trail port: what the gate and the access module hand their events to."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import Connection

from carevault.ledger.events import AuditEvent


class AuditUnavailable(RuntimeError):
    """The audit record could not be made durable: the caller must fail closed."""


class AuditTrail(Protocol):
    """Records audit events in the tamper-evident ledger.

    Contract: ``record`` returns only once every event is durable (committed with
    fsync). Given a ``connection``, the events are appended inside that
    transaction, so they commit together with the write they describe. On any
    failure it raises ``AuditUnavailable`` and the caller must not release data.
    """

    def record(
        self, events: Sequence[AuditEvent], connection: Connection | None = None
    ) -> None: ...
