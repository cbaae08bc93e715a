"""Clear date values of directory resources (Slot, Schedule, …) for range search and sort.

Revision ID: records_0011
Revises: records_0010
Create Date: 2026-12-01

The table starts empty: ``carevault reindex`` fills it for rows written before, and
adds the search terms this version indexes (``system|`` token searches).
"""

from __future__ import annotations

from alembic import op

from carevault.vault import tables as vault

revision = "records_0011"
down_revision = "records_0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    vault.search_date.create(op.get_bind())


def downgrade() -> None:
    vault.search_date.drop(op.get_bind())
