"""The key service's unwrap log as a second ledger, with the audit ledger's machinery."""

from __future__ import annotations

import json
from collections.abc import Sequence

from carevault.keys.service import UnwrapEvent, UnwrapLogUnavailable
from carevault.keys.tables import key_metadata
from carevault.ledger.store import LedgerEntry
from carevault.ledger.tables import ledger_tables
from carevault.ledger.trail import AuditUnavailable
from carevault.ledger.writer import LedgerWriter

UNWRAP_LEDGER = "unwrap"
unwrap_tables = ledger_tables(key_metadata, "unwrap")


def unwrap_entry(event: UnwrapEvent) -> LedgerEntry:
    document = {
        "at_us": event.at_us,
        "kek_version": event.kek_version,
        "key_id": event.key_id,
        "principal": event.principal,
        "purpose": event.purpose,
        "v": 1,
    }
    data = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return LedgerEntry(event.at_us, data.encode(), event.key_id, event.principal)


class LedgerUnwrapRecorder:
    """Implements the key service's ``UnwrapRecorder``: durable before the key is used."""

    def __init__(self, writer: LedgerWriter) -> None:
        self.writer = writer

    def record(self, events: Sequence[UnwrapEvent]) -> None:
        try:
            self.writer.append([unwrap_entry(event) for event in events])
        except AuditUnavailable as error:
            raise UnwrapLogUnavailable("the unwrap could not be recorded") from error
