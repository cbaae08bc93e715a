"""Each current record's search tokens kept as one list beside it
(``search_token_list``); on SQLite, the index of ``search_token`` by row dropped.

Revision ID: records_0023
Revises: records_0022
Create Date: 2026-12-03

Replacing or deleting a record's tokens needs to know which it has; the index on
``row_id`` answered that, and on SQLite every token of every write paid for it (a bulk
load's writer: 4-7 % of its work) while no search plan used it. PostgreSQL's plans do use
it (a page of a date-range search probes each head's tokens through it: 1.9 ms against
320 ms without, at 3,000 charts), so there it stays and deletions go through it. Both
backends keep the lists (a patient's date search reads them), written with the tokens.
The lists of rows written before are made here from ``search_token`` itself;
downgrading drops them (and brings SQLite's index back).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import BigInteger, Column, Integer, LargeBinary, MetaData, Table

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


def _pack(tokens: list[bytes]) -> bytes:
    # The encoding as of this revision (vault/tokenlist.py's ``pack``): each token after
    # its length as an unsigned LEB128 varint.
    parts: list[bytes] = []
    for token in tokens:
        size = len(token)
        prefix = bytearray()
        while size >= 0x80:
            prefix.append((size & 0x7F) | 0x80)
            size >>= 7
        prefix.append(size)
        parts += [bytes(prefix), token]
    return b"".join(parts)


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
                [{"row_id": row_id, "tokens": _pack(tokens)} for row_id, tokens in held.items()],
            )
    if bind.dialect.name == "sqlite":
        op.drop_index(_INDEX, table_name="search_token")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.create_index(_INDEX, "search_token", ["row_id"])
    _lists(MetaData()).drop(bind)
