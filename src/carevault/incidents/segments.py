"""Sealed Parquet segments of a ledger's entries, and the checks that let a scope use them.

A segment holds 256**L consecutive entries, aligned, so it is one complete subtree of
the ledger's Merkle tree: the root of its rows' leaf hashes must be the hash the tiles
hold for that subtree. Sealing writes the file, then appends a seal entry to the audit
ledger naming the file, its SHA-256, that root and its time span, so the ledger's own
hashes (and every signed checkpoint after it) cover the segment. A sealed file is never
rewritten. Before a scope reads a segment it checks the manifest row against the seal
entry, the file against the digest, and the root against the tree; any difference
refuses the scope and names the segment.

What a scope checks, every run, for every segment its window meets (``usable``):

- the manifest row equals the detail of the seal entry at ``seal_seq`` in the audit
  ledger (whose hashes every later signed checkpoint covers), and the segments run
  without a gap;
- the tree's hash for the segment's entries (one read of the ledger's tiles for all
  segments) equals the sealed Merkle root;
- the file's SHA-256 equals the sealed digest. The file is hashed in full unless this
  process already hashed the same file to that digest and the file's identity (device,
  inode, size, modification and status-change times) has not changed since: any write,
  rename over or chmod changes the status-change time, which a process cannot set back.
  A CLI run (one process) therefore always hashes in full; a server re-hashes a file once
  and again whenever it changes. ``incident segments --verify`` re-hashes every file and
  re-derives each root from the rows, whatever was checked before.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from carevault.db import read_transaction, write_transaction
from carevault.incidents.tables import ledger_segment
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.service import Ledger
from carevault.ledger.store import TILE_HEIGHT, LedgerEntry
from carevault.ledger.trail import AuditUnavailable

# pyarrow (with numpy) is imported where a file is written or read: every server process
# and CLI command builds a sealer (bootstrap), and most never seal; importing it up front
# cost each of them about a fifth of a second here, half a second on a slow machine.
if TYPE_CHECKING:
    import pyarrow as pa

    from carevault.bootstrap import Services


class SegmentRefused(RuntimeError):
    """A segment that cannot be trusted: the message names it and says why."""


@dataclass(frozen=True)
class Segment:
    ledger: str
    first_seq: int
    end_seq: int
    file_name: str
    sha256: str
    root: str
    rows: int
    min_at_us: int
    max_at_us: int
    seal_seq: int

    def seal_detail(self) -> dict[str, Any]:
        return {
            "ledger": self.ledger,
            "first": self.first_seq,
            "end": self.end_seq,
            "file": self.file_name,
            "sha256": self.sha256,
            "root": self.root,
            "rows": self.rows,
            "min_at_us": self.min_at_us,
            "max_at_us": self.max_at_us,
        }


def merkle_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 root of a power-of-two count of leaf hashes."""
    level = leaves
    while len(level) > 1:
        level = [
            hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest()
            for i in range(0, len(level), 2)
        ]
    return level[0]


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


#: Files this process hashed to their sealed digest, by identity (see the module's doc).
_Identity = tuple[str, int, int, int, int, int]
_VERIFIED: dict[_Identity, str] = {}
_VERIFIED_LOCK = threading.Lock()


def _identity(path: Path) -> _Identity:
    found = path.stat()
    return (
        str(path.resolve()),
        found.st_dev,
        found.st_ino,
        found.st_size,
        found.st_mtime_ns,
        found.st_ctime_ns,
    )


def digest_matches(path: Path, sha256: str, *, cached: bool = True) -> bool:
    """Whether ``path`` hashes to ``sha256``; with ``cached``, a file this process already
    hashed to it and whose identity has not changed since is not hashed again."""
    identity = _identity(path)
    if cached:
        with _VERIFIED_LOCK:
            if _VERIFIED.get(identity) == sha256:
                return True
    if file_digest(path) != sha256:
        return False
    # The identity is taken again: a file changed while it was hashed is not remembered.
    if _identity(path) == identity:
        with _VERIFIED_LOCK:
            _VERIFIED[identity] = sha256
    return True


def tree_node(ledger: Ledger, first: int, count: int) -> bytes | None:
    """The hash the ledger's tiles hold for the complete subtree [first, first + count),
    count = 256**L: a level-0 hash of a tile of level L."""
    return tree_nodes(ledger, count, [first]).get(first)


def tree_nodes(ledger: Ledger, count: int, firsts: list[int]) -> dict[int, bytes]:
    """``tree_node`` of several subtrees of ``count`` entries, in one read of the tiles."""
    if not firsts:
        return {}
    tile_level = (count.bit_length() - 1) // TILE_HEIGHT
    indexes = [first // count for first in firsts]
    tiles = {
        index: hashes
        for index, hashes, _ in ledger.store.stored_tiles(
            tile_level, min(indexes) >> TILE_HEIGHT, max(indexes) >> TILE_HEIGHT
        )
    }
    found: dict[int, bytes] = {}
    for first, index in zip(firsts, indexes, strict=True):
        hashes = tiles.get(index >> TILE_HEIGHT, b"")
        slot = index & ((1 << TILE_HEIGHT) - 1)
        value = hashes[slot * 32 : (slot + 1) * 32]
        if len(value) == 32:
            found[first] = value
    return found


def _segment(row: Any) -> Segment:
    return Segment(
        ledger=row.ledger,
        first_seq=int(row.first_seq),
        end_seq=int(row.end_seq),
        file_name=row.file_name,
        sha256=row.sha256,
        root=row.root,
        rows=int(row.rows),
        min_at_us=int(row.min_at_us),
        max_at_us=int(row.max_at_us),
        seal_seq=int(row.seal_seq),
    )


class Segments:
    """Seals and checks the Parquet segments of the audit and unwrap ledgers."""

    def __init__(
        self,
        engine: Engine,
        directory: Path,
        ledgers: dict[str, Ledger],
        entries_per_segment: int,
        now_us: Callable[[], int],
    ) -> None:
        if entries_per_segment < 256 or (entries_per_segment.bit_length() - 1) % TILE_HEIGHT:
            raise ValueError("a segment holds 256**L entries (256, 65536, ...)")
        self.engine = engine
        self.directory = directory
        self.ledgers = ledgers
        self.size = entries_per_segment
        self.now_us = now_us

    @property
    def audit(self) -> Ledger:
        return self.ledgers["audit"]

    def sealed(self, ledger: str) -> list[Segment]:
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(ledger_segment)
                .where(ledger_segment.c.ledger == ledger)
                .order_by(ledger_segment.c.first_seq)
            ).all()
        return [_segment(row) for row in rows]

    # --- sealing --------------------------------------------------------------------------

    def seal_pending(self, principal: str) -> list[Segment]:
        """Seal every complete segment not yet sealed, in both ledgers."""
        done: list[Segment] = []
        for name, ledger in self.ledgers.items():
            sealed = self.sealed(name)
            first = sealed[-1].end_seq if sealed else 0
            while first + self.size <= ledger.store.head()[0]:
                segment = self._seal(name, ledger, first, principal)
                if segment is not None:
                    done.append(segment)
                first += self.size
        return done

    def _seal(self, name: str, ledger: Ledger, first: int, principal: str) -> Segment | None:
        import pyarrow.compute as pc

        from carevault.incidents.columns import to_table

        end = first + self.size
        rows = list(ledger.store.entries(first, end))
        if [seq for seq, _ in rows] != list(range(first, end)):
            raise SegmentRefused(f"{name} entries {first}..{end - 1} are not all stored")
        table = to_table(name, rows)
        leaves = [bytes(value) for value in table.column("leaf").to_pylist()]
        root = merkle_root(leaves)
        if tree_node(ledger, first, self.size) != root:
            raise SegmentRefused(
                f"{name} entries {first}..{end - 1} do not match the ledger's tree: not sealed"
            )
        file_name = f"{name}-{first:012d}-{end:012d}.parquet"
        _, digest = self.write(table, file_name)
        at = table.column("at_us")
        segment = Segment(
            name,
            first,
            end,
            file_name,
            digest,
            root.hex(),
            table.num_rows,
            int(pc.min(at).as_py()),
            int(pc.max(at).as_py()),
            -1,
        )
        return self.record(segment, principal)

    def write(self, table: pa.Table, file_name: str) -> tuple[Path, str]:
        """Put a segment's file in place; the file and its SHA-256.

        Several processes may seal the same segment at once (each server worker runs a
        sealer): each writes a partial file of its own and links it into place only if
        no file is there, so a file in place is never rewritten under a reader. The
        rows are the ledger's, checked against its tree, and the writer is
        deterministic, so a file already in place is the same bytes; one that is not
        (a leftover of an interrupted seal, or planted) is replaced by the rows' own.
        """
        import pyarrow.parquet as pq

        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.directory / file_name
        partial = self.directory / f".{file_name}.{os.getpid()}.{secrets.token_hex(4)}.partial"
        try:
            pq.write_table(table, partial, compression="zstd", row_group_size=65_536)
            with partial.open("rb") as handle:
                os.fsync(handle.fileno())
            os.chmod(partial, 0o400)
            digest = file_digest(partial)
            try:
                os.link(partial, path)
            except FileExistsError:
                if file_digest(path) != digest:
                    os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        return path, digest

    def record(self, segment: Segment, principal: str) -> Segment | None:
        """Append the seal entry of a segment whose file is in place, and its manifest row,
        in one transaction; None if another process sealed it first."""
        event = AuditEvent(
            tag=Tag.SEGMENT_SEALED,
            outcome=Outcome.SUCCESS,
            at_us=self.now_us(),
            principal=principal,
            detail=segment.seal_detail(),
        )
        entry = LedgerEntry(event.at_us, event.canonical(), None, principal)
        try:
            with write_transaction(self.engine) as connection:
                try:
                    seal_seq, _ = self.audit.store.append(connection, [entry])
                except Exception as error:
                    raise AuditUnavailable("the audit ledger could not be written") from error
                values = {**segment.__dict__, "seal_seq": seal_seq, "sealed_us": event.at_us}
                connection.execute(insert(ledger_segment).values(**values))
        except IntegrityError:
            return None  # another process sealed it first: the same bytes, its seal stands
        return Segment(**{**segment.__dict__, "seal_seq": seal_seq})

    # --- checks ---------------------------------------------------------------------------

    def usable(self, ledger: str, since_us: int, until_us: int | None) -> tuple[list[Path], int]:
        """The checked files of ``ledger`` whose entries may fall in the window, and the
        first position not in any segment (the tail, read from the database)."""
        segments = self.sealed(ledger)
        expected = 0
        seals = self._seal_entries([segment.seal_seq for segment in segments])
        wanted: list[Segment] = []
        for segment in segments:
            if segment.first_seq != expected:
                raise SegmentRefused(
                    f"segment {segment.file_name}: starts at {segment.first_seq}, "
                    f"the previous one ended at {expected}"
                )
            self._check_seal(segment, seals.get(segment.seal_seq))
            expected = segment.end_seq
            if segment.max_at_us < since_us or (
                until_us is not None and segment.min_at_us >= until_us
            ):
                continue
            wanted.append(segment)
        nodes = self._nodes(wanted)
        return [
            self.check_file(segment, nodes.get(segment.first_seq)) for segment in wanted
        ], expected

    def _nodes(self, segments: list[Segment]) -> dict[int, bytes]:
        """The tree's hashes for the segments' entries, one read per segment size."""
        found: dict[int, bytes] = {}
        sizes: dict[tuple[str, int], list[int]] = {}
        for segment in segments:
            key = (segment.ledger, segment.end_seq - segment.first_seq)
            sizes.setdefault(key, []).append(segment.first_seq)
        for (name, count), firsts in sizes.items():
            found.update(tree_nodes(self.ledgers[name], count, firsts))
        return found

    def _seal_entries(self, positions: list[int]) -> dict[int, dict[str, Any]]:
        table = self.audit.store.tables.entry
        found: dict[int, dict[str, Any]] = {}
        with read_transaction(self.engine) as connection:
            for start in range(0, len(positions), 500):
                chunk = positions[start : start + 500]
                rows = connection.execute(
                    select(table.c.seq, table.c.entry).where(
                        table.c.ledger == self.audit.store.name, table.c.seq.in_(chunk)
                    )
                ).all()
                for seq, data in rows:
                    found[int(seq)] = json.loads(bytes(data))
        return found

    def _check_seal(self, segment: Segment, seal: dict[str, Any] | None) -> None:
        if (
            seal is None
            or seal.get("tag") != Tag.SEGMENT_SEALED.value
            or seal.get("detail") != segment.seal_detail()
        ):
            raise SegmentRefused(
                f"segment {segment.file_name}: its record does not match the ledger's seal entry"
            )

    def check_file(
        self, segment: Segment, node: bytes | None = None, *, cached: bool = True
    ) -> Path:
        """The segment's file, once its digest and the tree's hash for its entries are
        checked (``node``: that hash, if already read)."""
        path = self.directory / segment.file_name
        if not path.is_file():
            raise SegmentRefused(f"segment {segment.file_name}: the file is missing")
        if not digest_matches(path, segment.sha256, cached=cached):
            raise SegmentRefused(
                f"segment {segment.file_name}: the file differs from the one sealed "
                "(SHA-256 does not match the ledger's seal entry)"
            )
        if node is None:
            node = tree_node(
                self.ledgers[segment.ledger], segment.first_seq, segment.end_seq - segment.first_seq
            )
        if node is None or node.hex() != segment.root:
            raise SegmentRefused(
                f"segment {segment.file_name}: disagrees with the ledger "
                "(its Merkle root is not the tree's hash for its entries)"
            )
        return path

    def verify_rows(self, segment: Segment) -> None:
        """The deep check: the rows' leaf hashes give the sealed root, and the positions run
        without a gap (``incident segments verify``)."""
        import pyarrow.parquet as pq

        path = self.check_file(segment, cached=False)
        table = pq.read_table(path, columns=["seq", "leaf"])
        seqs = table.column("seq").to_pylist()
        if seqs != list(range(segment.first_seq, segment.end_seq)):
            raise SegmentRefused(f"segment {segment.file_name}: rows are missing or out of order")
        leaves = [bytes(value) for value in table.column("leaf").to_pylist()]
        if merkle_root(leaves).hex() != segment.root:
            raise SegmentRefused(f"segment {segment.file_name}: its rows do not give its root")


def segments_for(services: Services) -> Segments:
    """The segments of a data directory's audit and unwrap ledgers."""
    ledgers = {"audit": services.audit_ledger, "unwrap": services.unwrap_ledger}
    return Segments(
        services.engine,
        services.settings.resolved_segments_dir,
        ledgers,
        services.settings.incident_segment_entries,
        services.now_us,
    )
