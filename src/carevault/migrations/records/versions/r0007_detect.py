"""Detection: the detectors' cursor and state, alerts, release budget, patient flags.

Revision ID: records_0007
Revises: records_0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

from carevault.detect import tables as detect

revision = "records_0007"
down_revision = "records_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    for table in detect.TABLES:
        table.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(detect.TABLES):
        table.drop(bind)
