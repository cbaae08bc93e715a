"""``$import`` jobs of integration clients (their progress is the bulk import journal's).

Revision ID: records_0021
Revises: records_0020
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, Text

revision = "records_0021"
down_revision = "records_0020"
branch_labels = None
depends_on = None


def _table(metadata: MetaData) -> Table:
    # Spelled out as of this revision (importjobs/tables.py may change later).
    return Table(
        "import_job",
        metadata,
        Column("job_id", String(40), primary_key=True),
        Column("client_id", String(64), nullable=False),
        Column("principal", String(200), nullable=False),
        Column("session_id", String(64), nullable=True),
        Column("caller", Text, nullable=False),
        Column("status", String(16), nullable=False),
        Column("digest", String(64), nullable=False),
        Column("lines_total", Integer, nullable=False),
        Column("size", BigInteger, nullable=False),
        Column("requested_us", BigInteger, nullable=False),
        Column("updated_us", BigInteger, nullable=False),
        Column("started_us", BigInteger, nullable=True),
        Column("finished_us", BigInteger, nullable=True),
        Column("key_id", String(80), nullable=False),
        Column("error", Text, nullable=True),
        Column("lease_owner", String(120), nullable=True),
        Column("lease_until_us", BigInteger, nullable=True),
    )


def upgrade() -> None:
    _table(MetaData()).create(op.get_bind())


def downgrade() -> None:
    _table(MetaData()).drop(op.get_bind())
