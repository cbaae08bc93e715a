"""Who wrote a directory record, when it was not the system's own load
(``vault.tables.directory_written``): a room or role a member of staff made no longer
places the system's loaded records of patients not registered at its clinic (adversary
round 62's strict xfail, closed in stop 55).

Revision ID: records_0034
Revises: records_0033
Create Date: 2026-12-06

Rooms and roles written before this revision are not in the table: they place records as
before (their writers are in the audit ledger, which this database does not hold).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "records_0034"
down_revision = "records_0033"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "directory_written",
        sa.Column("resource_type", sa.String(64), primary_key=True),
        sa.Column("resource_id", sa.String(64), primary_key=True),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("written_us", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("directory_written")
