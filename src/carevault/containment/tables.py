"""The containment table: every mode ever started, and when it was released."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, LargeBinary, String, Table, Text

from carevault.db import Sequence64, metadata

containment = Table(
    "containment",
    metadata,
    Column("containment_id", Sequence64, primary_key=True, autoincrement=True),
    Column("mode", String(32), nullable=False),
    # A clinic id, an address range, a username or a client id, as the mode needs.
    Column("target", String(200), nullable=True),
    Column("reason", Text, nullable=False),
    Column("started_us", BigInteger, nullable=False),
    Column("started_by", String(200), nullable=False),
    Column("released_us", BigInteger, nullable=True),
    Column("released_by", String(200), nullable=True),
    # HMAC-SHA256 of the row's other columns under a key derived from the index key
    # (``state.row_seal``, records_0032): a row edited, released or moved by someone
    # without the key no longer matches. NULL in rows written before.
    Column("seal", LargeBinary, nullable=True),
    Index("ix_containment_active", "released_us"),
)
