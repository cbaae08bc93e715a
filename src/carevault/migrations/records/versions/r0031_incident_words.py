"""An incident's title sealed at rest (``incidents.words``): the column holds the
``sealed:1:`` form, longer than the 500 characters typed, so it becomes TEXT; and a
regulator's clock no longer copies the incident's title (it was never read back).

Revision ID: records_0031
Revises: records_0030
Create Date: 2026-12-06

Incidents declared before keep their title as typed until it is next amended (an
amendment seals it); ``Words.open`` reads a value without the prefix as it is. Clocks
opened before lose the copied title here: they name the regulator and the incident.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "records_0031"
down_revision = "records_0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incident") as batch:
        batch.alter_column(
            "title", existing_type=sa.String(500), type_=sa.Text(), existing_nullable=False
        )
    op.execute("UPDATE notify_clock SET title = regulator || ': incident ' || incident_id")


def downgrade() -> None:
    # A sealed title longer than 500 characters stops this on PostgreSQL rather than be cut
    # (the clocks' copied titles are gone for good: they were never read).
    with op.batch_alter_table("incident") as batch:
        batch.alter_column(
            "title", existing_type=sa.Text(), type_=sa.String(500), existing_nullable=False
        )
