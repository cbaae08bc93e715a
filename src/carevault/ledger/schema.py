"""The audit ledger's tables, beside the records they describe."""

from __future__ import annotations

from carevault.db import metadata
from carevault.ledger.tables import ledger_tables

AUDIT_LEDGER = "audit"
audit_tables = ledger_tables(metadata, "audit")
