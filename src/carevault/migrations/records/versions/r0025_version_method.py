"""The HTTP method that wrote each version (``resource_version.method``: POST, PUT,
PATCH or DELETE), so that a history Bundle says truthfully how each version was made.

Revision ID: records_0025
Revises: records_0024
Create Date: 2026-12-04

Versions written before keep NULL: their history infers the method (a deletion DELETE,
version 1 POST, any other PUT; ``vault.records.method_of``). Nothing is backfilled: an
inferred method written into the row would later read as one that was recorded.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "records_0025"
down_revision = "records_0024"
branch_labels = None
depends_on = None

COLUMN = "method"


def upgrade() -> None:
    # A nullable column without a default: PostgreSQL and SQLite add it without
    # rewriting the table (batch mode does not copy it for an added column).
    with op.batch_alter_table("resource_version") as batch:
        batch.add_column(sa.Column(COLUMN, sa.String(8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("resource_version") as batch:
        batch.drop_column(COLUMN)
