"""The unwrap log becomes a ledger: entries, tiles, head and checkpoints.

Revision ID: keys_0002
Revises: keys_0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

from carevault.ledger.unwrap import unwrap_tables

revision = "keys_0002"
down_revision = "keys_0001"
branch_labels = None
depends_on = None

_TABLES = [unwrap_tables.entry, unwrap_tables.tile, unwrap_tables.head, unwrap_tables.checkpoint]


def upgrade() -> None:
    bind = op.get_bind()
    for table in _TABLES:
        table.create(bind)
    op.drop_table("unwrap_log")


def downgrade() -> None:
    raise NotImplementedError("the unwrap ledger cannot be turned back into a plain table")
