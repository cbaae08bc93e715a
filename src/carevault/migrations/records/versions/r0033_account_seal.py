"""Each staff account sealed (``access.accounts.account_seal``): an HMAC of what the
account may do (id, username, role, clinics, practitioner) under a key derived from the
index key, so that someone who may write to the database but holds no key cannot widen
an account's role or clinics (adversary round 69).

Revision ID: records_0033
Revises: records_0032
Create Date: 2026-12-06

Accounts written before have no seal: the first server to start after this revision
seals them as they stand, once, and notes it beside the keyring (``keys.anchors``), out
of the database's reach; from then on an account without a matching seal is refused.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "records_0033"
down_revision = "records_0032"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("staff_account") as batch:
        batch.add_column(sa.Column("seal", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("staff_account") as batch:
        batch.drop_column("seal")
