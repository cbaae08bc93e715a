"""Ledger tiles keep the interior nodes of their subtrees, so proofs and roots read
them instead of hashing up to 255 nodes per tile again.

Revision ID: keys_0003
Revises: keys_0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from carevault.migrations.ledger_tiles import add_interior, drop_interior

revision = "keys_0003"
down_revision = "keys_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_interior("unwrap")


def downgrade() -> None:
    drop_interior("unwrap")
