"""SMART launch and OpenID Connect: the nonce an app sent with its authorization request,
a code that waits for the patient picker, and the patient in context of a session.

Revision ID: records_0010
Revises: records_0009
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "records_0010"
down_revision = "records_0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("auth_code") as batch:
        batch.add_column(sa.Column("nonce", sa.String(256), nullable=True))
        batch.add_column(sa.Column("launch_state", sa.String(16), nullable=True))
        batch.add_column(sa.Column("patient_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("patient_pseudonym", sa.String(40), nullable=True))
    with op.batch_alter_table("auth_session") as batch:
        batch.add_column(sa.Column("patient_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("patient_pseudonym", sa.String(40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("auth_session") as batch:
        batch.drop_column("patient_pseudonym")
        batch.drop_column("patient_id")
    with op.batch_alter_table("auth_code") as batch:
        batch.drop_column("patient_pseudonym")
        batch.drop_column("patient_id")
        batch.drop_column("launch_state")
        batch.drop_column("nonce")
