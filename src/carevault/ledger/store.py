"""The ledger store: entries, C2SP tlog-tiles (height 8) and the head, in one database.

Appends are O(log n): each batch rewrites only the right-edge tile of each tile
level it touches. Proofs are O(log n) reads: one query fetches the few tiles a
proof needs. Besides its 256 hashes (``hashes``, the C2SP tile), each tile row keeps
the interior nodes of its subtrees (``interior``), maintained as the tile grows, so a
proof or a root reads every complete subtree it needs instead of hashing it again.
Full tiles are immutable and cached. The head row is the lock that orders appenders,
across threads and processes.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Executable,
    Insert,
    Select,
    Table,
    Update,
    bindparam,
    func,
    insert,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from carevault.db import (
    driver_executemany,
    driver_first,
    driver_rows,
    pipelined,
    read_transaction,
    statement_read,
)
from carevault.ledger import tree
from carevault.ledger.tables import LedgerTables
from carevault.ledger.verifier import leaf_hash

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
HASH = 32

#: A tile's subtrees, bottom up: [its hashes, their pairs, ..., the tile's root when full];
#: level k holds width >> k nodes.
Levels = list[list[bytes]]


class LedgerCorrupt(RuntimeError):
    """The stored tiles cannot serve a hash they should hold."""


def tile_levels(hashes: Sequence[bytes]) -> Levels:
    """Every level of the complete subtrees over ``hashes``, bottom up (see ``Levels``)."""
    levels = [list(hashes)]
    while len(levels[-1]) > 1:
        below = levels[-1]
        # node_hash, inlined: this is the inner loop of appends and of a full verify.
        levels.append(
            [
                sha256(b"\x01" + below[i] + below[i + 1]).digest()
                for i in range(0, len(below) - 1, 2)
            ]
        )
    return levels


def push(levels: Levels, value: bytes) -> None:
    """Append a hash to a tile's levels, adding each node it completes (about one)."""
    level = 0
    levels[0].append(value)
    while level < TILE_HEIGHT and len(levels[level]) % 2 == 0:
        below = levels[level]
        if len(levels) == level + 1:
            levels.append([])
        levels[level + 1].append(sha256(b"\x01" + below[-2] + below[-1]).digest())
        level += 1


def interior_bytes(levels: Levels) -> bytes:
    return b"".join(b"".join(level) for level in levels[1:])


def _split(blob: bytes) -> list[bytes]:
    return [blob[i : i + HASH] for i in range(0, len(blob), HASH)]


@dataclass(frozen=True)
class StoredTile:
    """A tile as stored: its hashes and interior nodes, concatenated (see ``Levels``)."""

    hashes: bytes
    interior: bytes

    @classmethod
    def from_row(cls, hashes: bytes, interior: bytes | None) -> StoredTile:
        hashes = bytes(hashes)
        if interior is None:
            # Written before tiles kept their interior: computed once here.
            return cls(hashes, interior_bytes(tile_levels(_split(hashes))))
        return cls(hashes, bytes(interior))

    @property
    def width(self) -> int:
        return len(self.hashes) // HASH

    def node(self, height: int, index: int) -> bytes | None:
        """The hash of the complete subtree of 2**height hashes at ``index`` in this tile."""
        width = self.width
        if index >= width >> height:
            return None
        if height == 0:
            return self.hashes[index * HASH : (index + 1) * HASH]
        position = index + sum(width >> level for level in range(1, height))
        found = self.interior[position * HASH : (position + 1) * HASH]
        return found if len(found) == HASH else None

    def levels(self) -> Levels:
        width, interior = self.width, self.interior
        levels, position = [_split(self.hashes)], 0
        for level in range(1, TILE_HEIGHT + 1):
            count = width >> level
            if not count:
                break
            levels.append(_split(interior[position * HASH : (position + count) * HASH]))
            position += count
        if position * HASH != len(interior) or any(
            len(level) != width >> height for height, level in enumerate(levels)
        ):
            raise LedgerCorrupt("a tile's interior does not fit its hashes")
        return levels


@dataclass(frozen=True)
class LedgerEntry:
    """One entry to append: its canonical bytes and the indexed copies of two fields."""

    at_us: int
    data: bytes
    subject: str | None = None
    actor: str | None = None


class _Tiles:
    """Tile reads for one ledger, through an in-memory overlay of tiles being written."""

    def __init__(self, store: LedgerStore, connection: Connection) -> None:
        self.store = store
        self.connection = connection
        self.overlay: dict[tuple[int, int], Levels] = {}

    def levels(self, level: int, index: int) -> Levels:
        key = (level, index)
        if key in self.overlay:
            return self.overlay[key]
        stored = self.store.fetch_tiles(self.connection, [key]).get(key)
        return stored.levels() if stored is not None else [[]]

    def read(self, wanted: Sequence[tuple[int, int]]) -> list[bytes]:
        """Stored complete-subtree hashes (level, index), looked up in their tiles."""
        places = [_place(level, index) for level, index in wanted]
        missing = sorted(
            {(t_level, t_index) for t_level, t_index, _, _ in places} - set(self.overlay)
        )
        fetched = self.store.fetch_tiles(self.connection, missing) if missing else {}
        found: list[bytes] = []
        for t_level, t_index, height, index in places:
            key = (t_level, t_index)
            value: bytes | None = None
            levels = self.overlay.get(key)
            if levels is not None:
                if height < len(levels) and index < len(levels[height]):
                    value = levels[height][index]
            elif key in fetched:
                value = fetched[key].node(height, index)
            if value is None:
                raise LedgerCorrupt(f"tile {t_level}/{t_index} is missing hashes")
            found.append(value)
        return found


def _copy(levels: Levels) -> Levels:
    return [list(level) for level in levels]


def _place(level: int, index: int) -> tuple[int, int, int, int]:
    """Where a complete subtree's hash is kept: (tile level, tile index, height, index)."""
    tile_level, height = divmod(level, TILE_HEIGHT)
    first = index << height
    return tile_level, first >> TILE_HEIGHT, height, (first & (TILE_WIDTH - 1)) >> height


@functools.cache
def _tile_query(tile: Table, keys: int) -> Executable:
    """``keys`` tiles by (level, index): built once per count, so that a proof spends its
    time in the database rather than in building SQL.

    One exact primary-key lookup per tile, as a UNION ALL. An OR of pairs made SQLite
    walk every tile of the ledger; ``index IN (...)`` per level let PostgreSQL, before it
    has statistics on a new ledger, scan the whole level and filter.
    """
    columns = (tile.c.level, tile.c.tile_index, tile.c.hashes, tile.c.interior)
    lookups = [
        select(*columns).where(
            tile.c.ledger == bindparam("ledger"),
            tile.c.level == bindparam(f"level_{n}"),
            tile.c.tile_index == bindparam(f"index_{n}"),
        )
        for n in range(keys)
    ]
    return lookups[0] if keys == 1 else union_all(*lookups)


@dataclass(frozen=True)
class _Statements:
    """A ledger's write and head statements for one dialect, built once: an append runs
    each of them, and building SQL cost as much as the database work."""

    lock_head: Select[*tuple[Any, ...]]
    read_head: Select[*tuple[Any, ...]]
    create_head: Executable
    insert_entries: Insert
    save_tile: Insert
    update_head: Update


@functools.cache
def _statements(tables: LedgerTables, dialect_name: str) -> _Statements:
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    head, tile = tables.head, tables.tile
    read_head = select(head.c.size, head.c.root).where(head.c.ledger == bindparam("ledger_name"))
    # PostgreSQL: the head row is the lock that orders appenders (SQLite's writes are
    # serialised by BEGIN IMMEDIATE).
    lock_head = read_head.with_for_update() if dialect_name == "postgresql" else read_head
    upsert = dialect.insert(tile)
    return _Statements(
        lock_head=lock_head,
        read_head=read_head,
        create_head=dialect.insert(head).on_conflict_do_nothing(),
        insert_entries=insert(tables.entry),
        save_tile=upsert.on_conflict_do_update(
            index_elements=[tile.c.ledger, tile.c.level, tile.c.tile_index],
            set_={
                "width": upsert.excluded.width,
                "hashes": upsert.excluded.hashes,
                "interior": upsert.excluded.interior,
            },
        ),
        update_head=update(head)
        .where(head.c.ledger == bindparam("ledger_name"))
        .values(
            size=bindparam("new_size"),
            root=bindparam("new_root"),
            updated_us=bindparam("new_updated_us"),
        ),
    )


class LedgerStore:
    def __init__(self, engine: Engine, tables: LedgerTables, name: str) -> None:
        self.engine = engine
        self.tables = tables
        self.name = name
        self._full_tiles: OrderedDict[tuple[int, int], StoredTile] = OrderedDict()
        self._edge: tuple[int, bytes, dict[tuple[int, int], Levels]] | None = None
        self._cache_lock = threading.Lock()

    # --- tiles -----------------------------------------------------------------------------

    def fetch_tiles(
        self, connection: Connection, keys: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], StoredTile]:
        found: dict[tuple[int, int], StoredTile] = {}
        wanted: list[tuple[int, int]] = []
        with self._cache_lock:
            for key in keys:
                cached = self._full_tiles.get(key)
                if cached is None:
                    wanted.append(key)
                else:
                    self._full_tiles.move_to_end(key)
                    found[key] = cached
        if not wanted:
            return found
        parameters: dict[str, object] = {"ledger": self.name}
        for n, (level, index) in enumerate(wanted):
            parameters[f"level_{n}"] = level
            parameters[f"index_{n}"] = index
        rows = connection.execute(_tile_query(self.tables.tile, len(wanted)), parameters).all()
        for row in rows:
            stored = StoredTile.from_row(row.hashes, row.interior)
            level, index = int(row.level), int(row.tile_index)
            found[(level, index)] = stored
            if stored.width == TILE_WIDTH:
                with self._cache_lock:
                    self._full_tiles[(level, index)] = stored
                    while len(self._full_tiles) > 4096:
                        self._full_tiles.popitem(last=False)
        return found

    def _save_tile(self, connection: Connection, level: int, index: int, levels: Levels) -> None:
        driver_executemany(
            connection,
            _statements(self.tables, connection.dialect.name).save_tile,
            [
                {
                    "ledger": self.name,
                    "level": level,
                    "tile_index": index,
                    "width": len(levels[0]),
                    "hashes": b"".join(levels[0]),
                    "interior": interior_bytes(levels),
                }
            ],
        )

    # --- head ------------------------------------------------------------------------------

    def lock_head(self, connection: Connection) -> int:
        """Take the append lock (the head row) and return the current size."""
        return self._lock_head(connection)[0]

    def _lock_head(self, connection: Connection) -> tuple[int, bytes]:
        statements = _statements(self.tables, connection.dialect.name)
        named = {"ledger_name": self.name}
        # On the driver (``db.driver_first``), as the entries and tiles are written: every
        # group commit runs these, and SQLAlchemy's execution cost more than the database.
        found = driver_first(connection, statements.lock_head, named)
        if found is None:
            connection.execute(
                statements.create_head,
                {"ledger": self.name, "size": 0, "root": tree.EMPTY_ROOT, "updated_us": 0},
            )
            found = driver_first(connection, statements.lock_head, named)
        return (0, tree.EMPTY_ROOT) if found is None else (int(found[0]), bytes(found[1]))

    def head(self) -> tuple[int, bytes]:
        with read_transaction(self.engine) as connection:
            row = connection.execute(
                _statements(self.tables, connection.dialect.name).read_head,
                {"ledger_name": self.name},
            ).first()
        return (0, tree.EMPTY_ROOT) if row is None else (int(row.size), bytes(row.root))

    # --- append ----------------------------------------------------------------------------

    def append(self, connection: Connection, entries: Sequence[LedgerEntry]) -> tuple[int, int]:
        """Append entries inside ``connection``'s transaction.

        Returns (index of the first entry, new tree size). The caller commits; until
        then nothing is visible, and a rollback leaves the ledger as it was.
        """
        size, root_before = self._lock_head(connection)
        if not entries:
            return size, size
        tiles = _Tiles(self, connection)
        counts = [size >> (TILE_HEIGHT * level) for level in range(8)]
        edge = self._edge
        # The right-edge tiles this process wrote last time, if the head still has the
        # same root (so the same tree): no re-reading them on every group commit.
        if edge is not None and edge[0] == size and edge[1] == root_before:
            tiles.overlay.update((key, _copy(levels)) for key, levels in edge[2].items())
        else:
            for level, count in enumerate(counts):
                if count % TILE_WIDTH:
                    key = (level, count // TILE_WIDTH)
                    tiles.overlay[key] = _copy(tiles.levels(*key))
        dirty: set[tuple[int, int]] = set()

        def add(level: int, value: bytes) -> None:
            index = counts[level] // TILE_WIDTH
            levels = tiles.overlay.setdefault((level, index), [[]])
            push(levels, value)
            counts[level] += 1
            dirty.add((level, index))
            if len(levels[0]) == TILE_WIDTH:
                add(level + 1, levels[TILE_HEIGHT][0])

        for item in entries:
            add(0, leaf_hash(item.data))
        new_size = size + len(entries)
        # The root first (it may read complete tiles), then every write in one pipeline:
        # the head row is locked from here to the commit, and each round trip under it
        # (a wait for the GIL too, in a busy server) is a wait for every other appender.
        root = tree.tree_hash(new_size, tiles.read)
        statements = _statements(self.tables, connection.dialect.name)
        with pipelined(connection):
            driver_executemany(
                connection,
                statements.insert_entries,
                [
                    {
                        "ledger": self.name,
                        "seq": size + offset,
                        "at_us": item.at_us,
                        "subject": item.subject,
                        "actor": (item.actor or "")[:200] or None,
                        "entry": item.data,
                    }
                    for offset, item in enumerate(entries)
                ],
            )
            for level, index in sorted(dirty):
                self._save_tile(connection, level, index, tiles.overlay[(level, index)])
            driver_executemany(
                connection,
                statements.update_head,
                [
                    {
                        "ledger_name": self.name,
                        "new_size": new_size,
                        "new_root": root,
                        "new_updated_us": entries[-1].at_us,
                    }
                ],
            )
        # Remembered only now; if the transaction rolls back, the head keeps the old
        # root and the memory is not used.
        self._edge = (
            new_size,
            root,
            {
                key: levels  # the overlay is this append's own: no copy needed
                for key, levels in tiles.overlay.items()
                if len(levels[0]) < TILE_WIDTH
                and key[1] == (new_size >> (TILE_HEIGHT * key[0])) // TILE_WIDTH
            },
        )
        return size, new_size

    # --- reads and proofs ------------------------------------------------------------------

    def _reader(self, connection: Connection) -> _Tiles:
        return _Tiles(self, connection)

    # A root or a proof reads every tile it needs in one statement: no transaction needed.

    def root(self, size: int) -> bytes:
        with statement_read(self.engine) as connection:
            return tree.tree_hash(size, self._reader(connection).read)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        with statement_read(self.engine) as connection:
            return tree.inclusion_proof(index, size, self._reader(connection).read)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        with statement_read(self.engine) as connection:
            return tree.consistency_proof(old_size, new_size, self._reader(connection).read)

    def entry(self, seq: int) -> bytes | None:
        table = self.tables.entry
        with read_transaction(self.engine) as connection:
            found = connection.execute(
                select(table.c.entry).where(table.c.ledger == self.name, table.c.seq == seq)
            ).scalar()
        return None if found is None else bytes(found)

    def written_at(self, seq: int) -> int | None:
        """When the entry at ``seq`` was written (its ``at_us``), or the first entry after
        it where entries are missing; None when there is none from ``seq`` on."""
        table = self.tables.entry
        with read_transaction(self.engine) as connection:
            first = connection.execute(
                select(table.c.at_us)
                .where(table.c.ledger == self.name, table.c.seq >= seq)
                .order_by(table.c.seq)
                .limit(1)
            ).scalar()
        return None if first is None else int(first)

    def entries(
        self, start: int = 0, end: int | None = None, batch: int = 10_000
    ) -> Iterator[tuple[int, bytes]]:
        """(seq, canonical bytes) in order, streamed in batches."""
        for rows in self.entry_batches(start, end, batch):
            for seq, data in rows:
                yield int(seq), data if type(data) is bytes else bytes(data)

    def entry_batches(
        self, start: int = 0, end: int | None = None, batch: int = 16_384
    ) -> Iterator[list[tuple[int, bytes]]]:
        """Entries from ``start`` (to ``end``) in ledger order, as (seq, canonical bytes)
        tuples straight off the DB-API cursor, a range of ``batch`` sequence numbers at a
        time (fewer rows where entries are missing; none is skipped).

        Rows, not row objects: a full verify reads every entry, and building an object for
        each cost as much as hashing it. Bounded ranges, not ``LIMIT``: with no planner
        statistics yet (a ledger just loaded), PostgreSQL sorted the whole rest of the
        table for every batch.
        """
        table = self.tables.entry
        key = (table.c.ledger == self.name,)
        with read_transaction(self.engine) as connection:
            last = connection.execute(select(func.max(table.c.seq)).where(*key)).scalar()
        if last is None:
            return
        stop = int(last) + 1 if end is None else min(end, int(last) + 1)
        position = start
        while position < stop:
            upper = min(position + batch, stop)
            with read_transaction(self.engine) as connection:
                rows: list[tuple[int, bytes]] = driver_rows(
                    connection,
                    select(table.c.seq, table.c.entry)
                    .where(*key, table.c.seq >= position, table.c.seq < upper)
                    .order_by(table.c.seq),
                )
                if not rows:
                    # A hole (entries deleted): go on from the next entry there is.
                    following = connection.execute(
                        select(func.min(table.c.seq)).where(*key, table.c.seq >= upper)
                    ).scalar()
            if rows:
                yield rows
                position = upper
            else:
                position = stop if following is None else int(following)

    def stored_leaf_hashes(self, start: int, count: int) -> list[bytes]:
        """Level-0 hashes as the tiles hold them, to compare with recomputed leaves."""
        first, last = start // TILE_WIDTH, (start + count - 1) // TILE_WIDTH
        blob = b"".join(hashes for _, hashes, _ in self.stored_tiles(0, first, last))
        offset = start - first * TILE_WIDTH
        return _split(blob)[offset : offset + count]

    def stored_tiles(
        self, level: int, first: int, last: int
    ) -> list[tuple[int, bytes, bytes | None]]:
        """(index, hashes, interior) of the stored tiles of ``level`` with index ``first``
        .. ``last``, in order and as they are (no cache): what ``audit verify`` checks."""
        tile = self.tables.tile
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(tile.c.tile_index, tile.c.hashes, tile.c.interior)
                .where(
                    tile.c.ledger == self.name,
                    tile.c.level == level,
                    tile.c.tile_index >= first,
                    tile.c.tile_index <= last,
                )
                .order_by(tile.c.tile_index)
            ).all()
        return [
            (int(index), bytes(hashes), None if interior is None else bytes(interior))
            for index, hashes, interior in rows
        ]

    def find(
        self,
        *,
        subject: str | None = None,
        actor: str | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
        after_seq: int = -1,
        before_seq: int | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> list[tuple[int, bytes]]:
        """Entries by their indexed copies of subject, actor and time, in ledger order
        (``newest_first``: the reverse), between ``after_seq`` and ``before_seq``.

        The indexed columns are only a way in: callers read the fields from the entry
        bytes, which are what the tree commits to (see ``matching``).
        """
        table = self.tables.entry
        conditions = [table.c.ledger == self.name, table.c.seq > after_seq]
        if before_seq is not None:
            conditions.append(table.c.seq < before_seq)
        if subject is not None:
            conditions.append(table.c.subject == subject)
        if actor is not None:
            conditions.append(table.c.actor == actor)
        if since_us is not None:
            conditions.append(table.c.at_us >= since_us)
        if until_us is not None:
            conditions.append(table.c.at_us < until_us)
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(table.c.seq, table.c.entry)
                .where(*conditions)
                .order_by(table.c.seq.desc() if newest_first else table.c.seq)
                .limit(limit)
            ).all()
        return [(int(row.seq), bytes(row.entry)) for row in rows]

    def entries_at(self, positions: Iterable[int]) -> dict[int, bytes]:
        """The entries at ``positions`` (those there are), by position, read a few hundred
        at a time: one query per page of alerts rather than two per alert."""
        wanted = sorted({seq for seq in positions if seq >= 0})
        table = self.tables.entry
        found: dict[int, bytes] = {}
        with read_transaction(self.engine) as connection:
            for start in range(0, len(wanted), 500):
                rows = connection.execute(
                    select(table.c.seq, table.c.entry).where(
                        table.c.ledger == self.name,
                        table.c.seq.in_(wanted[start : start + 500]),
                    )
                ).all()
                found.update((int(row.seq), bytes(row.entry)) for row in rows)
        return found
