"""Wrapped data keys and the unwrap log.

Revision ID: keys_0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "keys_0001"
down_revision = None
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "data_key",
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("kek_version", sa.Integer, nullable=True),
        sa.Column("wrapped", sa.LargeBinary, nullable=True),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("shredded_us", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("key_id", name="pk_data_key"),
    )
    op.create_table(
        "unwrap_log",
        sa.Column("seq", _SEQ, nullable=False, autoincrement=True),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("kek_version", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_unwrap_log"),
    )
    op.create_index("ix_unwrap_log_at_us", "unwrap_log", ["at_us"])
    op.create_index("ix_unwrap_log_key_id", "unwrap_log", ["key_id"])


def downgrade() -> None:
    op.drop_table("unwrap_log")
    op.drop_table("data_key")
