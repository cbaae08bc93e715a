"""A ledger's tile table as the first ledger migrations made it, and what changed since.

The migrations that first created the ledgers create their other tables from the
declarations; the tile table has changed since, so those migrations spell out its
first shape here and later ones alter it explicitly.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def first_tile_table(prefix: str) -> sa.Table:
    """``<prefix>_tile`` without the interior column (records_0002, keys_0002)."""
    return sa.Table(
        f"{prefix}_tile",
        sa.MetaData(),
        sa.Column("ledger", sa.String(16), primary_key=True),
        sa.Column("level", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("tile_index", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("hashes", sa.LargeBinary, nullable=False),
    )


def add_interior(prefix: str) -> None:
    """Tiles keep the interior nodes of their subtrees; older rows stay NULL and are
    computed from their hashes when read."""
    op.add_column(f"{prefix}_tile", sa.Column("interior", sa.LargeBinary, nullable=True))


def drop_interior(prefix: str) -> None:
    with op.batch_alter_table(f"{prefix}_tile") as batch:
        batch.drop_column("interior")
