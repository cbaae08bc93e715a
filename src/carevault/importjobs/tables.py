"""The table of ``$import`` jobs: whose, how far, leased by which process.

How far a job's body has got (lines done, accepted, refused with reasons) is the bulk
import journal's (``bulk/journal.py``), keyed by the job's digest and written in the
transaction of each batch; this row holds the job's status and its lease.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, String, Table, Text

from carevault.db import metadata

import_job = Table(
    "import_job",
    metadata,
    Column("job_id", String(40), primary_key=True),
    Column("client_id", String(64), nullable=False),
    Column("principal", String(200), nullable=False),
    Column("session_id", String(64), nullable=True),
    #: The caller as it was at kick-off (role, clinics, scopes): what the worker writes as.
    Column("caller", Text, nullable=False),
    #: queued | running | completed | failed | cancelled
    Column("status", String(16), nullable=False),
    #: SHA-256 of the job id and its body: the journal's key for the job's progress.
    Column("digest", String(64), nullable=False),
    Column("lines_total", Integer, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("requested_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("started_us", BigInteger, nullable=True),
    Column("finished_us", BigInteger, nullable=True),
    #: The key service's id of the job's data key (its body is sealed with it).
    Column("key_id", String(80), nullable=False),
    Column("error", Text, nullable=True),
    Column("lease_owner", String(120), nullable=True),
    Column("lease_until_us", BigInteger, nullable=True),
)
