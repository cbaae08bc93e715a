"""Bulk imports: progress per source file and the lines each refused.

Revision ID: records_0012
Revises: records_0011
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, Text

revision = "records_0012"
down_revision = "records_0011"
branch_labels = None
depends_on = None


def _tables(metadata: MetaData) -> list[Table]:
    # Spelled out as of this revision (bulk/tables.py may change later, with a migration).
    return [
        Table(
            "bulk_import_file",
            metadata,
            Column("file_sha256", String(64), primary_key=True),
            Column("name", String(400), nullable=False),
            Column("items_total", Integer, nullable=False),
            Column("items_done", Integer, nullable=False),
            Column("accepted", Integer, nullable=False),
            Column("rejected", Integer, nullable=False),
            Column("started_us", BigInteger, nullable=False),
            Column("updated_us", BigInteger, nullable=False),
            Column("finished_us", BigInteger, nullable=True),
            Column("pending_lines", Text, nullable=True),
        ),
        Table(
            "bulk_import_rejection",
            metadata,
            Column("file_sha256", String(64), primary_key=True),
            Column("line", Integer, primary_key=True),
            Column("reason", Text, nullable=False),
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
