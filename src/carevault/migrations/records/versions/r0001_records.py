"""Encrypted resource versions, their clear heads, and blind-index search tokens.

Revision ID: records_0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "records_0001"
down_revision = None
branch_labels = None
depends_on = None

_ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "resource_head",
        sa.Column("row_id", _ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("last_updated_us", sa.BigInteger, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("patient_pseudonym", sa.String(40), nullable=True),
        sa.Column("clinic_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("row_id", name="pk_resource_head"),
        sa.UniqueConstraint("resource_type", "resource_id", name="uq_resource_head_type_id"),
    )
    op.create_index(
        "ix_resource_head_patient", "resource_head", ["patient_pseudonym", "resource_type"]
    )
    op.create_index(
        "ix_resource_head_updated", "resource_head", ["resource_type", "last_updated_us", "row_id"]
    )
    op.create_table(
        "resource_version",
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("last_updated_us", sa.BigInteger, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("key_id", sa.String(64), nullable=True),
        sa.Column("sealed", sa.LargeBinary, nullable=True),
        sa.PrimaryKeyConstraint(
            "resource_type", "resource_id", "version_id", name="pk_resource_version"
        ),
    )
    op.create_table(
        "search_token",
        sa.Column("token", sa.LargeBinary, nullable=False),
        sa.Column("row_id", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("token", "row_id", name="pk_search_token"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_search_token_row", "search_token", ["row_id"])


def downgrade() -> None:
    op.drop_table("search_token")
    op.drop_table("resource_version")
    op.drop_table("resource_head")
