"""Integration clients that sign assertions (SMART Backend Services' asymmetric client
authentication): each one's public JWK Set (``client_app.jwks``), and the ``jti`` of
each assertion accepted, kept until it expires so that none is accepted twice
(``client_assertion``).

Revision ID: records_0024
Revises: records_0023
Create Date: 2026-12-04

Clients registered before keep their secrets and no keys (NULL).
"""

from __future__ import annotations

import secrets
import time

import sqlalchemy as sa
from alembic import op

revision = "records_0024"
down_revision = "records_0023"
branch_labels = None
depends_on = None

COLUMN = "jwks"
TABLE = "client_assertion"


def upgrade() -> None:
    with op.batch_alter_table("client_app") as batch:
        batch.add_column(sa.Column(COLUMN, sa.Text(), nullable=True))
    # Spelled out as of this revision, so that later changes to access/tables.py need
    # migrations of their own.
    op.create_table(
        TABLE,
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("jti_hash", sa.String(64), nullable=False),
        sa.Column("expires_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("client_id", "jti_hash", name="pk_client_assertion"),
    )
    op.create_index("ix_client_assertion_expires_us", TABLE, ["expires_us"])


def downgrade() -> None:
    # A client registered with keys holds no secret (secret_hash NULL). Going down, it
    # could sign in no more, and an earlier release would compare its missing secret
    # with a placeholder anyone can send: each is revoked, and given a secret hash no
    # one holds the secret of, before its keys go.
    op.get_bind().execute(
        sa.text(
            "UPDATE client_app SET revoked_us = COALESCE(revoked_us, :now),"
            " secret_hash = :unmatchable WHERE jwks IS NOT NULL"
        ),
        {"now": time.time_ns() // 1_000, "unmatchable": secrets.token_hex(32)},
    )
    op.drop_index("ix_client_assertion_expires_us", table_name=TABLE)
    op.drop_table(TABLE)
    with op.batch_alter_table("client_app") as batch:
        batch.drop_column(COLUMN)
