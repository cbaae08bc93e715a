"""Tables of incidents, their timelines, their scope runs and the ledger's Parquet segments."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from carevault.db import Sequence64, metadata

#: An incident as it stands now; every change is also a timeline row and a ledger entry.
incident = Table(
    "incident",
    metadata,
    Column("incident_id", Sequence64, primary_key=True, autoincrement=True),
    # The officer's words, sealed (``incidents.words``; plain in rows from before r0031).
    Column("title", Text, nullable=False),
    Column("status", String(32), nullable=False),
    Column("declared_us", BigInteger, nullable=False),
    Column("declared_by", String(200), nullable=False),
    Column("since_us", BigInteger, nullable=False),
    Column("until_us", BigInteger, nullable=True),
    # What is believed compromised, as sorted compact JSON (see incidents.model).
    Column("compromised", Text, nullable=False),
    Column("alert_id", String(64), nullable=True),
    Column("updated_us", BigInteger, nullable=False),
)

#: The incident's timeline: declaration, amendments, scope runs, findings, alerts.
incident_event = Table(
    "incident_event",
    metadata,
    Column("event_id", Sequence64, primary_key=True, autoincrement=True),
    Column("incident_id", BigInteger, nullable=False),
    Column("at_us", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("actor", String(200), nullable=False),
    # JSON: what changed, or the scope's summary; never patient data in the clear.
    Column("detail", Text, nullable=False),
    # The audit ledger position of the entry that records it, where there is one.
    Column("ledger_seq", BigInteger, nullable=True),
    Index("ix_incident_event_incident", "incident_id", "event_id"),
)

#: Every kept scope run of each incident: numbered per incident, with who computed it,
#: the ledger sizes it started from, the whole document and its digest (which the
#: ``incident:scope:computed`` entry at ``ledger_seq`` also holds). Runs recorded before
#: records_0020 kept only their lines: their ``document`` is NULL.
incident_scope_run = Table(
    "incident_scope_run",
    metadata,
    Column("run_id", Sequence64, primary_key=True, autoincrement=True),
    Column("incident_id", BigInteger, nullable=False),
    Column("at_us", BigInteger, nullable=False),
    # JSON {tier: {patient id: [categories]}}: pseudonymous ids, as the report itself.
    Column("lines", Text, nullable=False),
    Column("number", Integer, nullable=False),
    Column("actor", String(200), nullable=True),
    # The audit and unwrap ledgers' sizes when the computation started: every entry
    # before them was there to be read.
    Column("audit_size", BigInteger, nullable=True),
    Column("unwrap_size", BigInteger, nullable=True),
    # The scope document as canonical JSON (keys sorted, compact, UTF-8) and its SHA-256.
    Column("document", Text, nullable=True),
    Column("sha256", String(64), nullable=True),
    Column("ledger_seq", BigInteger, nullable=True),
    Index("ix_incident_scope_run_incident", "incident_id", "run_id"),
    Index("ux_incident_scope_run_number", "incident_id", "number", unique=True),
)

#: Sealed Parquet segments of a ledger's entries [first_seq, end_seq): immutable files
#: whose digest and Merkle root are also in the audit ledger's seal entry (``seal_seq``).
ledger_segment = Table(
    "ledger_segment",
    metadata,
    Column("ledger", String(16), primary_key=True),
    Column("first_seq", BigInteger, primary_key=True, autoincrement=False),
    Column("end_seq", BigInteger, nullable=False),
    Column("file_name", String(200), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("root", String(64), nullable=False),
    Column("rows", Integer, nullable=False),
    # The entries' time span, so that a scope opens only the segments its window meets.
    Column("min_at_us", BigInteger, nullable=False),
    Column("max_at_us", BigInteger, nullable=False),
    Column("seal_seq", BigInteger, nullable=False),
    Column("sealed_us", BigInteger, nullable=False),
)
