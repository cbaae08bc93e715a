"""A current record's search tokens as one value, kept beside its head.

``search_token`` is keyed by (token, row): what a search asks. Replacing or deleting a
record's tokens asks the other way round (which tokens has this row?), and answering it
from a second index on ``row_id`` made every token of every write pay for two B-trees
(a bulk load's writer: 4-7 % of its work). On SQLite, which has no such index since
records_0023, the row's list (``search_token_list``) answers it instead with one read,
and the tokens are then deleted by their primary key; PostgreSQL keeps the index, which
its search plans use.

The encoding: each token preceded by its length as an unsigned LEB128 varint (one byte
below 128: blind tokens are 16 bytes, clear ones a few dozen). Blind tokens are keyed
HMACs, so the list shows no more than the index itself does.
"""

from __future__ import annotations

from collections.abc import Iterable

# The one-byte prefixes, looked up rather than built (a list per record of a bulk load).
_SHORT = tuple(bytes((size,)) for size in range(0x80))


def pack(tokens: Iterable[bytes]) -> bytes:
    """``tokens`` as one value (in the order given)."""
    parts: list[bytes] = []
    for token in tokens:
        size = len(token)
        if size < 0x80:
            parts.append(_SHORT[size])
        else:
            parts.append(_varint(size))
        parts.append(token)
    return b"".join(parts)


def unpack(packed: bytes) -> list[bytes]:
    """The tokens of a value :func:`pack` made; ``ValueError`` if it is cut short."""
    tokens: list[bytes] = []
    at, end = 0, len(packed)
    while at < end:
        size, shift = 0, 0
        while True:
            if at >= end:
                raise ValueError("token list ends inside a length")
            byte = packed[at]
            at += 1
            size |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
        if at + size > end:
            raise ValueError("token list ends inside a token")
        tokens.append(bytes(packed[at : at + size]))
        at += size
    return tokens


def _varint(size: int) -> bytes:
    out = bytearray()
    while size >= 0x80:
        out.append((size & 0x7F) | 0x80)
        size >>= 7
    out.append(size)
    return bytes(out)
