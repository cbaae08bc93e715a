"""What the store holds of its search tokens: by the index, and by each row's list."""

from __future__ import annotations

from sqlalchemy import Engine, select

from carevault.vault.tables import search_token, search_token_list
from carevault.vault.tokenlist import unpack


def indexed_tokens(engine: Engine) -> dict[int, set[bytes]]:
    """Each row's tokens in ``search_token`` (what searches find it by)."""
    held: dict[int, set[bytes]] = {}
    with engine.connect() as connection:
        for row_id, token in connection.execute(
            select(search_token.c.row_id, search_token.c.token)
        ):
            held.setdefault(int(row_id), set()).add(bytes(token))
    return held


def listed_tokens(engine: Engine) -> dict[int, set[bytes]]:
    """Each row's tokens as its list in ``search_token_list`` says, none twice."""
    held: dict[int, set[bytes]] = {}
    with engine.connect() as connection:
        for row_id, packed in connection.execute(select(search_token_list)):
            tokens = unpack(bytes(packed))
            assert len(tokens) == len(set(tokens)), row_id
            held[int(row_id)] = set(tokens)
    return held
