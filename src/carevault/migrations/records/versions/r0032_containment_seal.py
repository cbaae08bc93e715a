"""Each containment row sealed (``containment.state``): an HMAC of the row under a key
derived from the index key, so that someone who may write to the database but holds no
key cannot lift PHI-offline or a suspension behind the officer's back (adversary round
69).

Revision ID: records_0032
Revises: records_0031
Create Date: 2026-12-06

Rows written before have no seal: the first server to start after this revision seals
them as they stand, once, and notes it beside the keyring (``keys.anchors``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "records_0032"
down_revision = "records_0031"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("containment") as batch:
        batch.add_column(sa.Column("seal", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("containment") as batch:
        batch.drop_column("seal")
