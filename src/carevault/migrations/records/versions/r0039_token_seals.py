"""The rows behind a token sealed (review of round 70): authorization codes
(``oauth.code_seal``), refresh tokens (``sessions.refresh_seal``) and console cookies
(``console.sessions``), each an HMAC of what it opens under a key derived from the index
key: someone who may write to the database but holds no key could insert a code, a
refresh token or a console cookie of their own for another person's account or session,
and the session it opened was sealed as genuine.

Revision ID: records_0039
Revises: records_0038
Create Date: 2026-12-06

Rows written before have no seal: the first server to start after this revision seals
them as they stand, once, and notes it beside the keyring (``keys.anchors``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "records_0039"
down_revision = "records_0038"
branch_labels = None
depends_on = None

#: records_0002 and records_0005 create refresh tokens and console cookies from their
#: current declarations, which hold the column already in a new database.
_TABLES = ("auth_code", "refresh_token", "console_session")


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for table in _TABLES:
        if "seal" not in {column["name"] for column in inspector.get_columns(table)}:
            with op.batch_alter_table(table) as batch:
                batch.add_column(sa.Column("seal", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("seal")
