"""Each client app sealed (``access.clients.client_seal``): an HMAC of every column but
its creation time (its kind, secret's hash, key set, redirect URIs, scopes, clinics,
bound account and revocation) under a key derived from the index key, so that someone
who may write to the database but holds no key cannot widen an app's reach, un-revoke
it or give it a secret of their own (adversary round 70).

Revision ID: records_0037
Revises: records_0036
Create Date: 2026-12-06

Apps registered before have no seal: the first server to start after this revision
seals them as they stand, once, and notes it beside the keyring (``keys.anchors``), out
of the database's reach; from then on an app without a matching seal is refused.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "records_0037"
down_revision = "records_0036"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("client_app") as batch:
        batch.add_column(sa.Column("seal", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("client_app") as batch:
        batch.drop_column("seal")
