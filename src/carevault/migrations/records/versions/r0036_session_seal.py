"""Each session sealed (``access.sessions.session_seal``): an HMAC of what a session's
token may do (whom it acts for, through which client, its scopes and patient, until
when, whether revoked or waiting for a step-up) under a key derived from the index key,
so that someone who may write to the database but holds no key cannot move a session to
another account, lengthen it, un-revoke it or clear its step-up (adversary round 70).

Revision ID: records_0036
Revises: records_0035
Create Date: 2026-12-06

Sessions opened before have no seal: the first server to start after this revision seals
them as they stand, once, and notes it beside the keyring (``keys.anchors``); from then
on a session without a matching seal is refused.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "records_0036"
down_revision = "records_0035"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("auth_session") as batch:
        batch.add_column(sa.Column("seal", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("auth_session") as batch:
        batch.drop_column("seal")
