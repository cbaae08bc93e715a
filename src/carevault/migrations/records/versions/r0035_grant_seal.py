"""Each break-the-glass grant sealed (``access.breakglass.grant_seal``): an HMAC of what
the grant opens (account, patient, reason code, from and until, emergency and approved)
under a key derived from the index key, so that someone who may write to the database
but holds no key cannot open a patient's record to an account by inserting or editing a
grant (adversary round 70).

Revision ID: records_0035
Revises: records_0034
Create Date: 2026-12-06

Grants written before have no seal: the first server to start after this revision seals
them as they stand, once, and notes it beside the keyring (``keys.anchors``); from then
on a grant without a matching seal opens nothing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "records_0035"
down_revision = "records_0034"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("break_glass") as batch:
        batch.add_column(sa.Column("seal", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("break_glass") as batch:
        batch.drop_column("seal")
