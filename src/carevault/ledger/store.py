"""The ledger store: entries, C2SP tlog-tiles (height 8) and the head, in one database.

Appends are O(log n): each batch rewrites only the right-edge tile of each tile
level it touches. Proofs are O(log n) reads: one query fetches the few tiles a
proof needs, and full tiles (immutable once full) are cached. The head row is the
lock that orders appenders, across threads and processes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, and_, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from carevault.db import read_transaction
from carevault.ledger import tree
from carevault.ledger.tables import LedgerTables
from carevault.ledger.verifier import leaf_hash, node_hash

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
HASH = 32


class LedgerCorrupt(RuntimeError):
    """The stored tiles cannot serve a hash they should hold."""


def fold(hashes: Sequence[bytes]) -> bytes:
    """The root of a complete subtree over ``hashes`` (a power of two of them)."""
    level = list(hashes)
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


@dataclass(frozen=True)
class LedgerEntry:
    """One entry to append: its canonical bytes and the indexed copies of two fields."""

    at_us: int
    data: bytes
    subject: str | None = None
    actor: str | None = None


def _split(blob: bytes) -> list[bytes]:
    return [blob[i : i + HASH] for i in range(0, len(blob), HASH)]


class _Tiles:
    """Tile reads for one ledger, through an in-memory overlay of tiles being written."""

    def __init__(self, store: LedgerStore, connection: Connection) -> None:
        self.store = store
        self.connection = connection
        self.overlay: dict[tuple[int, int], list[bytes]] = {}

    def tile(self, level: int, index: int) -> list[bytes]:
        key = (level, index)
        if key in self.overlay:
            return self.overlay[key]
        return self.store.fetch_tiles(self.connection, [key]).get(key, [])

    def read(self, wanted: Sequence[tuple[int, int]]) -> list[bytes]:
        """Stored complete-subtree hashes (level, index), computed from their tiles."""
        places = [_place(level, index) for level, index in wanted]
        missing = sorted(
            {(t_level, t_index) for t_level, t_index, _, _ in places} - set(self.overlay)
        )
        fetched = self.store.fetch_tiles(self.connection, missing) if missing else {}
        found: list[bytes] = []
        for t_level, t_index, offset, count in places:
            hashes = self.overlay.get((t_level, t_index)) or fetched.get((t_level, t_index), [])
            if offset + count > len(hashes):
                raise LedgerCorrupt(f"tile {t_level}/{t_index} is missing hashes")
            if count == 1:
                found.append(hashes[offset])
            elif len(hashes) == TILE_WIDTH and (t_level, t_index) not in self.overlay:
                levels = self.store.tile_levels((t_level, t_index), hashes, offset, count)
                if isinstance(levels, bytes):
                    found.append(levels)
                else:
                    found.append(levels[count.bit_length() - 1][offset // count])
            else:
                found.append(fold(hashes[offset : offset + count]))
        return found


def _place(level: int, index: int) -> tuple[int, int, int, int]:
    """Where a complete subtree's hash comes from: (tile level, tile index, offset, count)."""
    tile_level, sub = divmod(level, TILE_HEIGHT)
    first = index << sub
    return tile_level, first >> TILE_HEIGHT, first & (TILE_WIDTH - 1), 1 << sub


class LedgerStore:
    def __init__(self, engine: Engine, tables: LedgerTables, name: str) -> None:
        self.engine = engine
        self.tables = tables
        self.name = name
        self._full_tiles: OrderedDict[tuple[int, int], list[bytes]] = OrderedDict()
        self._levels: OrderedDict[tuple[int, int], list[list[bytes]]] = OrderedDict()
        self._edge: tuple[int, bytes, dict[tuple[int, int], list[bytes]]] | None = None
        self._used: set[tuple[int, int]] = set()
        self._cache_lock = threading.Lock()

    # --- tiles -----------------------------------------------------------------------------

    def fetch_tiles(
        self, connection: Connection, keys: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], list[bytes]]:
        found: dict[tuple[int, int], list[bytes]] = {}
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
        tile = self.tables.tile
        by_level: dict[int, list[int]] = {}
        for level, index in wanted:
            by_level.setdefault(level, []).append(index)
        # One exact key range per level (ledger, level, index IN ...): an OR of pairs
        # made SQLite walk every tile of the ledger.
        rows = connection.execute(
            select(tile.c.level, tile.c.tile_index, tile.c.hashes).where(
                or_(
                    *(
                        and_(
                            tile.c.ledger == self.name,
                            tile.c.level == level,
                            tile.c.tile_index.in_(indices),
                        )
                        for level, indices in by_level.items()
                    )
                )
            )
        ).all()
        for row in rows:
            hashes = _split(row.hashes)
            found[(row.level, row.tile_index)] = hashes
            if len(hashes) == TILE_WIDTH:
                with self._cache_lock:
                    self._full_tiles[(row.level, row.tile_index)] = hashes
                    while len(self._full_tiles) > 4096:
                        self._full_tiles.popitem(last=False)
        return found

    def tile_levels(
        self, key: tuple[int, int], hashes: list[bytes], offset: int, count: int
    ) -> list[list[bytes]] | bytes:
        """Every level of a full (hence immutable) tile's subtree, computed on its second
        use; the first use folds only the slice it needs (a cold proof stays cheap)."""
        with self._cache_lock:
            cached = self._levels.get(key)
            if cached is not None:
                self._levels.move_to_end(key)
                return cached
            first_use = key not in self._used
            if first_use:
                self._used.add(key)
                if len(self._used) > 100_000:
                    self._used.clear()
        if first_use:
            return fold(hashes[offset : offset + count])
        levels = [hashes]
        while len(levels[-1]) > 1:
            below = levels[-1]
            levels.append([node_hash(below[i], below[i + 1]) for i in range(0, len(below), 2)])
        with self._cache_lock:
            self._levels[key] = levels
            while len(self._levels) > 1024:
                self._levels.popitem(last=False)
        return levels

    def _save_tile(
        self, connection: Connection, level: int, index: int, hashes: list[bytes]
    ) -> None:
        tile = self.tables.tile
        values = {
            "ledger": self.name,
            "level": level,
            "tile_index": index,
            "width": len(hashes),
            "hashes": b"".join(hashes),
        }
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(tile).values(**values)
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=[tile.c.ledger, tile.c.level, tile.c.tile_index],
                set_={"width": statement.excluded.width, "hashes": statement.excluded.hashes},
            )
        )

    # --- head ------------------------------------------------------------------------------

    def lock_head(self, connection: Connection) -> int:
        """Take the append lock (the head row) and return the current size."""
        return self._lock_head(connection)[0]

    def _lock_head(self, connection: Connection) -> tuple[int, bytes]:
        head = self.tables.head
        statement = select(head.c.size, head.c.root).where(head.c.ledger == self.name)
        if connection.dialect.name == "postgresql":
            statement = statement.with_for_update()
        row = connection.execute(statement).first()
        if row is None:
            dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
            connection.execute(
                dialect.insert(head)
                .values(ledger=self.name, size=0, root=tree.EMPTY_ROOT, updated_us=0)
                .on_conflict_do_nothing()
            )
            row = connection.execute(statement).first()
        return (0, tree.EMPTY_ROOT) if row is None else (int(row.size), bytes(row.root))

    def head(self) -> tuple[int, bytes]:
        head = self.tables.head
        with read_transaction(self.engine) as connection:
            row = connection.execute(
                select(head.c.size, head.c.root).where(head.c.ledger == self.name)
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
            tiles.overlay.update((key, list(hashes)) for key, hashes in edge[2].items())
        else:
            for level, count in enumerate(counts):
                if count % TILE_WIDTH:
                    tiles.overlay[(level, count // TILE_WIDTH)] = list(
                        tiles.tile(level, count // TILE_WIDTH)
                    )
        dirty: set[tuple[int, int]] = set()

        def add(level: int, value: bytes) -> None:
            index = counts[level] // TILE_WIDTH
            hashes = tiles.overlay.setdefault((level, index), [])
            hashes.append(value)
            counts[level] += 1
            dirty.add((level, index))
            if len(hashes) == TILE_WIDTH:
                add(level + 1, fold(hashes))

        for item in entries:
            add(0, leaf_hash(item.data))
        connection.execute(
            insert(self.tables.entry),
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
        new_size = size + len(entries)
        root = tree.tree_hash(new_size, tiles.read)
        # Remembered only now; if the transaction rolls back, the head keeps the old
        # root and the memory is not used.
        self._edge = (
            new_size,
            root,
            {
                key: list(hashes)
                for key, hashes in tiles.overlay.items()
                if len(hashes) < TILE_WIDTH
                and key[1] == (new_size >> (TILE_HEIGHT * key[0])) // TILE_WIDTH
            },
        )
        connection.execute(
            update(self.tables.head)
            .where(self.tables.head.c.ledger == self.name)
            .values(size=new_size, root=root, updated_us=entries[-1].at_us)
        )
        return size, new_size

    # --- reads and proofs ------------------------------------------------------------------

    def _reader(self, connection: Connection) -> _Tiles:
        return _Tiles(self, connection)

    def root(self, size: int) -> bytes:
        with read_transaction(self.engine) as connection:
            return tree.tree_hash(size, self._reader(connection).read)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        with read_transaction(self.engine) as connection:
            return tree.inclusion_proof(index, size, self._reader(connection).read)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        with read_transaction(self.engine) as connection:
            return tree.consistency_proof(old_size, new_size, self._reader(connection).read)

    def entry(self, seq: int) -> bytes | None:
        table = self.tables.entry
        with read_transaction(self.engine) as connection:
            found = connection.execute(
                select(table.c.entry).where(table.c.ledger == self.name, table.c.seq == seq)
            ).scalar()
        return None if found is None else bytes(found)

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
        """Entries from ``start`` (to ``end``) in ledger order, ``batch`` rows at a time,
        as the driver returns them: (seq, canonical bytes) tuples.

        The rows are taken straight off the DB-API cursor: a full verify reads every
        entry, and building a row object for each cost as much as hashing it.
        """
        table = self.tables.entry
        position = start
        while end is None or position < end:
            with read_transaction(self.engine) as connection:
                result = connection.execute(
                    select(table.c.seq, table.c.entry)
                    .where(table.c.ledger == self.name, table.c.seq >= position)
                    .order_by(table.c.seq)
                    .limit(batch if end is None else min(batch, end - position))
                )
                rows: list[tuple[int, bytes]] = list(result.cursor.fetchall())
                result.close()
            if not rows:
                return
            yield rows
            position = int(rows[-1][0]) + 1

    def stored_leaf_hashes(self, start: int, count: int) -> list[bytes]:
        """Level-0 hashes as the tiles hold them, to compare with recomputed leaves."""
        return _split(self.stored_leaf_blob(start, count))

    def stored_leaf_blob(self, start: int, count: int) -> bytes:
        """The level-0 hashes of entries ``start`` .. ``start + count - 1``, concatenated
        as the tiles hold them (shorter if tiles are missing or short)."""
        tile = self.tables.tile
        first, last = start // TILE_WIDTH, (start + count - 1) // TILE_WIDTH
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(tile.c.tile_index, tile.c.hashes)
                .where(
                    tile.c.ledger == self.name,
                    tile.c.level == 0,
                    tile.c.tile_index >= first,
                    tile.c.tile_index <= last,
                )
                .order_by(tile.c.tile_index)
            ).all()
        blobs: list[bytes] = []
        for expected, row in enumerate(rows, start=first):
            if row.tile_index != expected:
                break
            blobs.append(bytes(row.hashes))
            if len(row.hashes) < TILE_WIDTH * HASH:
                break
        offset = (start - first * TILE_WIDTH) * HASH
        return b"".join(blobs)[offset : offset + count * HASH]

    def find(
        self,
        *,
        subject: str | None = None,
        actor: str | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
        after_seq: int = -1,
        limit: int = 100,
    ) -> list[tuple[int, bytes]]:
        """Entries by their indexed copies of subject, actor and time, in ledger order.

        The indexed columns are only a way in: callers read the fields from the entry
        bytes, which are what the tree commits to (see ``matching``).
        """
        table = self.tables.entry
        conditions = [table.c.ledger == self.name, table.c.seq > after_seq]
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
                .order_by(table.c.seq)
                .limit(limit)
            ).all()
        return [(int(row.seq), bytes(row.entry)) for row in rows]
