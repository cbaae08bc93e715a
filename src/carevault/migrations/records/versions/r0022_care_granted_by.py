"""Care relationships keep who alone made them: a blind token of the principal whose
own writes are every version of the record that opened them
(``care_relationship.granted_by``). The detectors do not count such a relationship as
explaining that principal's accesses (an insider who books a celebrity and then reads
the chart), until someone else's write corroborates it.

Revision ID: records_0022
Revises: records_0021
Create Date: 2026-12-03

Relationships made before this revision keep none (NULL): they explain as they did.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "records_0022"
down_revision = "records_0021"
branch_labels = None
depends_on = None

_TABLE = "care_relationship"
COLUMN = "granted_by"


def upgrade() -> None:
    # records_0002 creates the table from its current definition, so a new database has
    # the column already: add it only where it is missing.
    present = {column["name"] for column in sa.inspect(op.get_bind()).get_columns(_TABLE)}
    if COLUMN not in present:
        with op.batch_alter_table(_TABLE) as batch:
            batch.add_column(sa.Column(COLUMN, sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table(_TABLE) as batch:
        batch.drop_column(COLUMN)
