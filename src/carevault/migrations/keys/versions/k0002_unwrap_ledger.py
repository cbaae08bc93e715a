"""The unwrap log becomes a ledger: entries, tiles, head and checkpoints.

Revision ID: keys_0002
Revises: keys_0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from carevault.ledger.unwrap import unwrap_tables
from carevault.migrations.ledger_tiles import first_tile_table

revision = "keys_0002"
down_revision = "keys_0001"
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TABLES = [
    unwrap_tables.entry,
    first_tile_table("unwrap"),
    unwrap_tables.head,
    unwrap_tables.checkpoint,
]


def upgrade() -> None:
    bind = op.get_bind()
    for table in _TABLES:
        table.create(bind)
    op.drop_table("unwrap_log")


def downgrade() -> None:
    """Back to the plain table (empty: ledger entries do not fit its columns one for one)."""
    op.create_table(
        "unwrap_log",
        sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("kek_version", sa.Integer, nullable=False),
    )
    bind = op.get_bind()
    for table in reversed(_TABLES):
        table.drop(bind)
