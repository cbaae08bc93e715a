"""The audit ledger read back, to check that what happened (or was refused) is in it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from carevault.config import Settings
from carevault.db import make_engine
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.schema import AUDIT_LEDGER, audit_tables
from carevault.ledger.store import LedgerStore


def events(store: LedgerStore, tag: Tag | None = None) -> list[AuditEvent]:
    found = [AuditEvent.from_canonical(data) for _, data in store.entries()]
    return [event for event in found if tag is None or event.tag is tag]


def refused(store: LedgerStore, tag: Tag, reason: str) -> AuditEvent:
    """The one denied ``tag`` event whose reason contains ``reason``."""
    matching = [
        event
        for event in events(store, tag)
        if event.outcome is Outcome.DENIED and reason in event.reason
    ]
    assert len(matching) == 1, (reason, [event.reason for event in events(store, tag)])
    return matching[0]


def reasons(store: LedgerStore, tag: Tag) -> list[str]:
    return [event.reason for event in events(store, tag)]


@contextmanager
def audit_store(settings: Settings) -> Iterator[LedgerStore]:
    """The audit ledger of a data directory another process serves, opened to read only."""
    engine = make_engine(settings.resolved_database_url)
    try:
        yield LedgerStore(engine, audit_tables, AUDIT_LEDGER)
    finally:
        engine.dispose()
