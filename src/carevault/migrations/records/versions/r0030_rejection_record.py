"""The record a refused import line named, where the import may not change it
(``bulk_import_rejection.record``, ``Type/id``): a resumed import refuses the lines that
name that record, as the run that refused it did.

Revision ID: records_0030
Revises: records_0029
Create Date: 2026-12-06

Refusals recorded before keep NULL: a run resumed over them judges the lines naming such
a record on what is stored under its id, as it did.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "records_0030"
down_revision = "records_0029"
branch_labels = None
depends_on = None

COLUMN = "record"


def upgrade() -> None:
    # A nullable column without a default: added without rewriting the table.
    with op.batch_alter_table("bulk_import_rejection") as batch:
        batch.add_column(sa.Column(COLUMN, sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bulk_import_rejection") as batch:
        batch.drop_column(COLUMN)
