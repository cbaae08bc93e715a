"""Each current record's search tokens kept as one list beside it
(``search_token_list``), in place of the index of ``search_token`` by row.

Revision ID: records_0023
Revises: records_0022
Create Date: 2026-12-03

Replacing or deleting a record's tokens needs to know which it has; the index on
``row_id`` answered that, and every token of every write paid for it (a bulk load:
7 % of its rate). The lists of rows written before are made here from ``search_token``
itself, row by row in the index's order, before the index goes; downgrading brings the
index back and drops the lists.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import BigInteger, Column, Integer, LargeBinary, MetaData, Table

from carevault.vault.tokenlist import pack

revision = "records_0023"
down_revision = "records_0022"
branch_labels = None
depends_on = None

_INDEX = "ix_search_token_row"
# Heads read, and their lists inserted, together while filling.
_BATCH = 2000


def _lists(metadata: MetaData) -> Table:
    # Spelled out as of this revision (vault/tables.py may change later).
    return Table(
        "search_token_list",
        metadata,
        Column(
            "row_id",
            BigInteger().with_variant(Integer(), "sqlite"),
            primary_key=True,
            autoincrement=False,
        ),
        Column("tokens", LargeBinary, nullable=False),
    )


def upgrade() -> None:
    bind = op.get_bind()
    lists = _lists(MetaData())
    lists.create(bind)
    # Heads in batches, in row order, and their tokens through the row index (still
    # here): every row with tokens has a head (a deletion removes its tokens).
    after = 0
    while True:
        row_ids = [
            int(row_id)
            for row_id in bind.execute(
                sa.text(
                    "SELECT row_id FROM resource_head WHERE row_id > :after"
                    " ORDER BY row_id LIMIT :batch"
                ),
                {"after": after, "batch": _BATCH},
            ).scalars()
        ]
        if not row_ids:
            break
        after = row_ids[-1]
        held: dict[int, list[bytes]] = {}
        for row_id, token in bind.execute(
            sa.text("SELECT row_id, token FROM search_token WHERE row_id IN :rows").bindparams(
                sa.bindparam("rows", expanding=True)
            ),
            {"rows": row_ids},
        ):
            held.setdefault(int(row_id), []).append(bytes(token))
        if held:
            bind.execute(
                sa.insert(lists),
                [{"row_id": row_id, "tokens": pack(tokens)} for row_id, tokens in held.items()],
            )
    op.drop_index(_INDEX, table_name="search_token")


def downgrade() -> None:
    op.create_index(_INDEX, "search_token", ["row_id"])
    _lists(MetaData()).drop(op.get_bind())
