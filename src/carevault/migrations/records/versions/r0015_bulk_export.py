"""Bulk Data export: jobs awaiting approval or running, and the files they wrote.

Revision ID: records_0015
Revises: records_0014
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, Text

revision = "records_0015"
down_revision = "records_0014"
branch_labels = None
depends_on = None


def _tables(metadata: MetaData) -> list[Table]:
    # Spelled out as of this revision (export/tables.py may change later, with a migration).
    return [
        Table(
            "export_job",
            metadata,
            Column("job_id", String(40), primary_key=True),
            Column("level", String(16), nullable=False),
            Column("group_id", String(64), nullable=True),
            Column("client_id", String(64), nullable=False),
            Column("principal", String(200), nullable=False),
            Column("session_id", String(64), nullable=True),
            Column("caller", Text, nullable=False),
            Column("types", Text, nullable=False),
            Column("since_us", BigInteger, nullable=True),
            Column("request_url", Text, nullable=False),
            Column("status", String(16), nullable=False),
            Column("approvals_needed", Integer, nullable=False),
            Column("approvals", Text, nullable=False),
            Column("requested_us", BigInteger, nullable=False),
            Column("updated_us", BigInteger, nullable=False),
            Column("transaction_us", BigInteger, nullable=True),
            Column("finished_us", BigInteger, nullable=True),
            Column("expires_us", BigInteger, nullable=True),
            Column("batches_done", Integer, nullable=False),
            Column("cursor_row", BigInteger, nullable=False),
            Column("patients_total", Integer, nullable=False),
            Column("patients_done", Integer, nullable=False),
            Column("resources_done", Integer, nullable=False),
            Column("key_id", String(80), nullable=False),
            Column("error", Text, nullable=True),
            Column("lease_owner", String(120), nullable=True),
            Column("lease_until_us", BigInteger, nullable=True),
        ),
        Table(
            "export_file",
            metadata,
            Column("job_id", String(40), primary_key=True),
            Column("batch", Integer, primary_key=True),
            Column("resource_type", String(64), primary_key=True),
            Column("name", String(200), nullable=False),
            Column("count", Integer, nullable=False),
            Column("size", BigInteger, nullable=False),
        ),
    ]


def upgrade() -> None:
    bind = op.get_bind()
    for table in _tables(MetaData()):
        table.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(_tables(MetaData())):
        table.drop(bind)
