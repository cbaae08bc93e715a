"""Ledger tables, declared for any metadata: the audit ledger lives with the records,
the unwrap ledger with the key service, each in its own database."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

from carevault.db import Sequence64, metadata


@dataclass(frozen=True)
class LedgerTables:
    entry: Table
    tile: Table
    head: Table
    checkpoint: Table


def ledger_tables(metadata: MetaData, prefix: str) -> LedgerTables:
    """The four tables of a ledger, named ``<prefix>_entry`` and so on.

    ``subject`` (a patient pseudonym or key id) and ``actor`` are copies of fields
    inside the committed entry, indexed for lookups; whoever uses them checks them
    against the entry bytes, which are what the tree commits to.
    """
    entry = Table(
        f"{prefix}_entry",
        metadata,
        Column("ledger", String(16), primary_key=True),
        Column("seq", BigInteger, primary_key=True, autoincrement=False),
        Column("at_us", BigInteger, nullable=False),
        Column("subject", String(64), nullable=True),
        Column("actor", String(200), nullable=True),
        Column("entry", LargeBinary, nullable=False),
        Index(f"ix_{prefix}_entry_subject", "ledger", "subject", "seq"),
        Index(f"ix_{prefix}_entry_at", "ledger", "at_us"),
    )
    tile = Table(
        f"{prefix}_tile",
        metadata,
        Column("ledger", String(16), primary_key=True),
        Column("level", Integer, primary_key=True, autoincrement=False),
        Column("tile_index", BigInteger, primary_key=True, autoincrement=False),
        Column("width", Integer, nullable=False),
        # The level-8·L hashes of this tile, 32 bytes each, concatenated (C2SP tlog-tiles).
        Column("hashes", LargeBinary, nullable=False),
        # The interior nodes of the tile's subtrees, level by level upwards (width >> k at
        # level k), concatenated; NULL in tiles written before it was kept (records_0003).
        Column("interior", LargeBinary, nullable=True),
    )
    head = Table(
        f"{prefix}_head",
        metadata,
        Column("ledger", String(16), primary_key=True),
        Column("size", BigInteger, nullable=False),
        Column("root", LargeBinary, nullable=False),
        Column("updated_us", BigInteger, nullable=False),
    )
    checkpoint = Table(
        f"{prefix}_checkpoint",
        metadata,
        Column("checkpoint_id", Sequence64, primary_key=True, autoincrement=True),
        Column("ledger", String(16), nullable=False),
        Column("size", BigInteger, nullable=False),
        Column("root", LargeBinary, nullable=False),
        Column("at_us", BigInteger, nullable=False),
        Column("reason", String(64), nullable=False),
        # The signed note (C2SP signed-note), with any witness cosignatures appended.
        Column("note", Text, nullable=False),
        Index(f"ix_{prefix}_checkpoint_size", "ledger", "size"),
    )
    return LedgerTables(entry, tile, head, checkpoint)


#: Every full verification of a ledger (``audit verify``, or the console's button): when,
#: by whom, and what it found, so the dashboard can say when the ledgers last held.
#: Kept with the records whichever ledger it checked.
verify_run = Table(
    "ledger_verify_run",
    metadata,
    Column("run_id", Sequence64, primary_key=True, autoincrement=True),
    Column("ledger", String(16), nullable=False),
    Column("started_us", BigInteger, nullable=False),
    Column("started_by", String(200), nullable=False),
    Column("finished_us", BigInteger, nullable=True),
    Column("ok", Integer, nullable=True),
    Column("entries", BigInteger, nullable=True),
    Column("checkpoints", Integer, nullable=True),
    Column("witnesses", Integer, nullable=True),
    # The first problem found (an entry number or a checkpoint), never entry content.
    Column("first_problem", Text, nullable=True),
    Index("ix_ledger_verify_run_ledger", "ledger", "run_id"),
)


#: Accesses to patient records per hour and actor, counted from the ledger's indexed
#: columns for the console's activity chart (``ledger.activity``); not evidence.
activity_rollup = Table(
    "ledger_activity",
    metadata,
    Column("ledger", String(16), primary_key=True),
    Column("hour_us", BigInteger, primary_key=True, autoincrement=False),
    Column("actor", String(200), primary_key=True),
    Column("count", BigInteger, nullable=False),
)

#: The last entry of each ledger that ``activity_rollup`` has counted.
activity_mark = Table(
    "ledger_activity_mark",
    metadata,
    Column("ledger", String(16), primary_key=True),
    Column("seq", BigInteger, nullable=False),
)
