"""Sign-in throttling per username, source and both; one-time recovery codes; a
confidential client bound to the integration account it acts for.

Revision ID: records_0006
Revises: records_0005
Create Date: 2026-12-02

The staff_account columns that held the old lockout (failed_count, next_attempt_us,
locked_until_us) stay, unused: dropping them would break a server process still
running the previous version during an upgrade.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from carevault.access import tables as access

revision = "records_0006"
down_revision = "records_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    access.sign_in_throttle.create(bind)
    access.recovery_code.create(bind)
    with op.batch_alter_table("client_app") as batch:
        batch.add_column(sa.Column("account_id", sa.String(40), nullable=True))


def downgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("client_app") as batch:
        batch.drop_column("account_id")
    access.recovery_code.drop(bind)
    access.sign_in_throttle.drop(bind)
