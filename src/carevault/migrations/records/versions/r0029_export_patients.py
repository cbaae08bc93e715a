"""The Patient ids a Bulk Data export's ``patient`` parameter narrowed it to
(``export_job.patients``, a JSON list), kept with the job as its ``_type`` and ``_since``
are, so that the officers approve the narrowing and the worker applies it.

Revision ID: records_0029
Revises: records_0028
Create Date: 2026-12-06

Jobs asked before keep NULL: no ``patient`` was accepted then, so each covers every
patient in its client's reach, as it did.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "records_0029"
down_revision = "records_0028"
branch_labels = None
depends_on = None

COLUMN = "patients"


def upgrade() -> None:
    # A nullable column without a default: added without rewriting the table.
    with op.batch_alter_table("export_job") as batch:
        batch.add_column(sa.Column(COLUMN, sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("export_job") as batch:
        batch.drop_column(COLUMN)
