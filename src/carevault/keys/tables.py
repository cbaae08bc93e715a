"""Tables of the key service. They live in the key store, apart from the records.

With SQLite the key store is its own file (``<home>/keys/keys.db``), so a copy of
the records database holds no wrapped keys and the unwrap log never waits on a
lock held by a records transaction. With PostgreSQL it may share the database.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, MetaData, String, Table

key_metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "pk": "pk_%(table_name)s",
    }
)

data_key = Table(
    "data_key",
    key_metadata,
    Column("key_id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("kek_version", Integer, nullable=True),
    Column("wrapped", LargeBinary, nullable=True),
    Column("created_us", BigInteger, nullable=False),
    Column("shredded_us", BigInteger, nullable=True),
    # Every server process looks for keys shredded lately, twice a second
    # (``KeyService._forget_shredded``): a lookup, not a scan of every patient's key.
    Index("ix_data_key_shredded_us", "shredded_us"),
)
