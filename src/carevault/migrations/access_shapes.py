"""Access tables as the first migrations made them, where they have changed since.

records_0002 creates the access tables from their declarations; a table that later
gained a column is spelled out here in its first shape, so that a fresh database
gets the column from the migration that adds it (records_0005 for client_app).
"""

from __future__ import annotations

import sqlalchemy as sa


def first_client_app_table() -> sa.Table:
    """``client_app`` without ``account_id`` (records_0002)."""
    return sa.Table(
        "client_app",
        sa.MetaData(naming_convention={"pk": "pk_%(table_name)s"}),
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=True),
        sa.Column("redirect_uris", sa.Text, nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("clinic_ids", sa.Text, nullable=False),
        sa.Column("revoked_us", sa.BigInteger, nullable=True),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )
