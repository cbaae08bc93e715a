"""Tables of Bulk Data exports: the job (who asked, for what, who approved, how far it
got) and the files it wrote.

A batch's files, its ``export_file`` rows, the job's cursor and the batch's audit
entries commit in one transaction, so after a kill the job goes on from the last
committed batch: no patient is written or recorded twice, none is left out.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, String, Table, Text

from carevault.db import metadata

export_job = Table(
    "export_job",
    metadata,
    Column("job_id", String(40), primary_key=True),
    #: system | patient | group
    Column("level", String(16), nullable=False),
    #: The clinic a Group-level export covers.
    Column("group_id", String(64), nullable=True),
    Column("client_id", String(64), nullable=False),
    Column("principal", String(200), nullable=False),
    Column("session_id", String(64), nullable=True),
    #: The caller as it was at kick-off (role, clinics, scopes): what the worker reads as.
    Column("caller", Text, nullable=False),
    #: Comma-separated resource types (empty: every type the caller may read).
    Column("types", Text, nullable=False),
    Column("since_us", BigInteger, nullable=True),
    #: JSON list of the Patient ids a ``patient`` parameter narrowed the export to (NULL:
    #: none given, every patient in reach).
    Column("patients", Text, nullable=True),
    Column("request_url", Text, nullable=False),
    #: pending | approved | running | completed | failed | cancelled | denied | expired
    Column("status", String(16), nullable=False),
    Column("approvals_needed", Integer, nullable=False),
    #: JSON list of {"officer", "at_us"}.
    Column("approvals", Text, nullable=False),
    Column("requested_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    #: The manifest's transactionTime: when the worker started reading.
    Column("transaction_us", BigInteger, nullable=True),
    Column("finished_us", BigInteger, nullable=True),
    Column("expires_us", BigInteger, nullable=True),
    #: The last batch committed (0: none yet), and the last patient head it covered.
    Column("batches_done", Integer, nullable=False),
    Column("cursor_row", BigInteger, nullable=False),
    Column("patients_total", Integer, nullable=False),
    Column("patients_done", Integer, nullable=False),
    Column("resources_done", Integer, nullable=False),
    #: The key service's id of the job's data key (files are sealed with it).
    Column("key_id", String(80), nullable=False),
    Column("error", Text, nullable=True),
    Column("lease_owner", String(120), nullable=True),
    Column("lease_until_us", BigInteger, nullable=True),
)

#: One sealed NDJSON file of one resource type from one batch.
export_file = Table(
    "export_file",
    metadata,
    Column("job_id", String(40), primary_key=True),
    Column("batch", Integer, primary_key=True),
    Column("resource_type", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("count", Integer, nullable=False),
    Column("size", BigInteger, nullable=False),
)
