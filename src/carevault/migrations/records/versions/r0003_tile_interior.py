"""Ledger tiles keep the interior nodes of their subtrees, so proofs and roots read
them instead of hashing up to 255 nodes per tile again.

Revision ID: records_0003
Revises: records_0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from carevault.migrations.ledger_tiles import add_interior, drop_interior

revision = "records_0003"
down_revision = "records_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_interior("audit")


def downgrade() -> None:
    drop_interior("audit")
