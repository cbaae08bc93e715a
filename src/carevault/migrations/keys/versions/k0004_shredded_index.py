"""Data keys are found by when they were shredded: every server process looks for the
keys shredded lately, twice a second, and forgets the ones it holds (adversary round 66).

Revision ID: keys_0004
Revises: keys_0003
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "keys_0004"
down_revision = "keys_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_data_key_shredded_us", "data_key", ["shredded_us"])


def downgrade() -> None:
    op.drop_index("ix_data_key_shredded_us", table_name="data_key")
