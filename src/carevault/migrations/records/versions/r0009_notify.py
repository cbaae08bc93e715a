"""Breach notices, their verification codes, bounced addresses, regulators' clocks.

Revision ID: records_0009
Revises: records_0008
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

from carevault.notify import tables as notify

revision = "records_0009"
down_revision = "records_0008"
branch_labels = None
depends_on = None

TABLES = (notify.notify_notice, notify.notify_bounce, notify.notify_job, notify.notify_clock)


def upgrade() -> None:
    bind = op.get_bind()
    for table in TABLES:
        table.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(TABLES):
        table.drop(bind)
