"""The scopes an app asked for, kept with its authorization code (``auth_code.asked_scope``).

Revision ID: records_0041
Revises: records_0040
Create Date: 2026-12-07

SMART App Launch 2.0: servers "SHOULD return v1 scopes when v1 scopes are requested and
granted". The token response of a client-credentials grant answers each scope as the
client spelt it (``scopes.as_asked``, stop 65), but a code's token request names no
scope: it was asked at /auth/authorize, and only the granted v2 text was kept with the
code, so an app that asked ``patient/*.read`` was answered ``patient/*.rs`` and, reading
its request back, found its scope refused. The words asked are kept with the code now.
A code made before has none and is answered in the granted text, as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "records_0041"
down_revision = "records_0040"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # records_0002 creates auth_code from its current declaration, which holds the
    # column already in a new database.
    columns = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("auth_code")}
    if "asked_scope" not in columns:
        with op.batch_alter_table("auth_code") as batch:
            batch.add_column(sa.Column("asked_scope", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("auth_code") as batch:
        batch.drop_column("asked_scope")
