"""Notices across server processes: a lease on each send job, and /verify's rate-limit
buckets in the database.

Revision ID: records_0014
Revises: records_0013
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "records_0014"
down_revision = "records_0013"
branch_labels = None
depends_on = None

LEASE = (("lease_owner", sa.String(120)), ("lease_until_us", sa.BigInteger()))


def upgrade() -> None:
    # records_0009 creates the notify tables from their current definitions, so a new
    # database has these already: add only what is missing.
    inspector = sa.inspect(op.get_bind())
    present = {column["name"] for column in inspector.get_columns("notify_job")}
    missing = [(name, kind) for name, kind in LEASE if name not in present]
    if missing:
        with op.batch_alter_table("notify_job") as batch:
            for name, kind in missing:
                batch.add_column(sa.Column(name, kind, nullable=True))
    if not inspector.has_table("notify_verify_bucket"):
        op.create_table(
            "notify_verify_bucket",
            sa.Column("subject", sa.String(80), primary_key=True),
            sa.Column("tokens", sa.Float(), nullable=False),
            sa.Column("updated_us", sa.BigInteger(), nullable=False),
        )


def downgrade() -> None:
    op.drop_table("notify_verify_bucket")
    with op.batch_alter_table("notify_job") as batch:
        for name, _ in reversed(LEASE):
            batch.drop_column(name)
