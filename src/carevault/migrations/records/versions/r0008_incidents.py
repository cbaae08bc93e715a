"""Incidents, their timelines and scope runs, and the ledger's sealed Parquet segments.

Revision ID: records_0008
Revises: records_0007
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

from carevault.incidents import tables

revision = "records_0008"
down_revision = "records_0007"
branch_labels = None
depends_on = None

_TABLES = (
    tables.incident,
    tables.incident_event,
    tables.incident_scope_run,
    tables.ledger_segment,
)


def upgrade() -> None:
    bind = op.get_bind()
    for table in _TABLES:
        table.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(_TABLES):
        table.drop(bind)
