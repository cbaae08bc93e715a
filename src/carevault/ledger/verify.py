"""``audit verify``: recompute a ledger from its entries and check everything stored
against it — the leaf hashes in the tiles, the interior tiles, the head, every
signed checkpoint, the consistency between checkpoints, and what each witness saw.
The first mismatch of each kind is named (an entry number or a checkpoint)."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from hashlib import sha256

from carevault.ledger.checkpoints import StoredCheckpoint
from carevault.ledger.store import (
    HASH,
    TILE_HEIGHT,
    TILE_WIDTH,
    LedgerCorrupt,
    LedgerStore,
    Levels,
    interior_bytes,
    tile_levels,
)
from carevault.ledger.verifier import (
    EMPTY_ROOT,
    VerificationError,
    VerifierKey,
    node_hash,
    open_checkpoint,
    verify_consistency,
    verify_cosignature,
)
from carevault.ledger.witness import WitnessView


class RootBuilder:
    """The root of a growing tree, one leaf at a time, in O(log n) memory."""

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[tuple[int, bytes]] = []

    def add(self, leaf: bytes) -> None:
        self.add_subtree(0, leaf)

    def add_subtree(self, level: int, value: bytes) -> None:
        """Add a complete subtree of 2**level leaves (the size must be a multiple of it)."""
        added = 1 << level
        stack = self._stack
        while stack and stack[-1][0] == level:
            value = node_hash(stack.pop()[1], value)
            level += 1
        stack.append((level, value))
        self.size += added

    def add_tile(self, levels: Levels, wanted: Sequence[int], roots: dict[int, bytes]) -> None:
        """Add a tile's leaves (``levels[0]``, starting at a tile edge), recording the root at
        every size in ``wanted``. A full tile with no such size inside is added as the one
        subtree it is, which keeps a full verification near the cost of the hashing."""
        size = self.size
        if (
            len(levels[0]) == TILE_WIDTH
            and size % TILE_WIDTH == 0
            and bisect_right(wanted, size + TILE_WIDTH) == bisect_right(wanted, size)
        ):
            self.add_subtree(TILE_HEIGHT, levels[TILE_HEIGHT][0])
            return
        for leaf in levels[0]:
            self.add(leaf)
            index = bisect_left(wanted, self.size)
            if index < len(wanted) and wanted[index] == self.size:
                roots[self.size] = self.root()

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        value = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            value = node_hash(left, value)
        return value


@dataclass
class VerifyReport:
    ledger: str
    entries: int = 0
    checkpoints: int = 0
    witnesses: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_ledger(
    store: LedgerStore,
    checkpoints: Sequence[StoredCheckpoint],
    vkey: VerifierKey,
    witnesses: Sequence[tuple[VerifierKey, WitnessView | None]] = (),
    *,
    batch: int = 16_384,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    report = VerifyReport(store.name)
    problems = report.problems
    size, head_root = store.head()
    wanted = {item.size for item in checkpoints} | {
        view.size for _, view in witnesses if view is not None
    }
    roots: dict[int, bytes] = {0: EMPTY_ROOT}
    builder = RootBuilder()
    marks = sorted(wanted)
    expected = 0
    first_entry_problem: str | None = None
    # The roots of the full level-0 tiles, in order: the hashes of tile level 1.
    tile_roots: list[bytes] = []
    batch = max(TILE_WIDTH, batch - batch % TILE_WIDTH)
    for rows in store.entry_batches(batch=batch):
        first, last = int(rows[0][0]), int(rows[-1][0])
        if first_entry_problem is None and (first, last) != (expected, expected + len(rows) - 1):
            # Sequence numbers are unique and sorted: a batch that neither starts where
            # the last ended nor spans exactly its length has a gap.
            first_entry_problem = _sequence_problem([int(seq) for seq, _ in rows], expected)
        base = builder.size
        leaves = [sha256(b"\x00" + data).digest() for _, data in rows]
        tiles = [tile_levels(leaves[i : i + TILE_WIDTH]) for i in range(0, len(leaves), TILE_WIDTH)]
        for levels in tiles:
            builder.add_tile(levels, marks, roots)
        tile_roots.extend(levels[-1][0] for levels in tiles if len(levels[0]) == TILE_WIDTH)
        if first_entry_problem is None:
            first_entry_problem = _check_leaf_tiles(store, base, rows, tiles)
        expected = last + 1
        if progress is not None:
            progress(builder.size)
    if first_entry_problem is None:
        first_entry_problem = _check_upper_tiles(store, tile_roots)
    report.entries = builder.size
    if first_entry_problem:
        problems.append(first_entry_problem)
    recomputed = builder.root()
    if builder.size != size:
        problems.append(
            f"the ledger holds {builder.size} entries but its head says {size}"
            + (f": entry {size} and later were inserted" if builder.size > size else "")
        )
    elif recomputed != head_root:
        problems.append("the head's root does not match the entries")
    if size <= builder.size:
        try:
            if store.root(size) != roots.get(size, recomputed if size == builder.size else b""):
                problems.append("the stored interior tiles do not match the entries")
        except LedgerCorrupt as error:
            problems.append(str(error))
    _check_checkpoints(store, checkpoints, vkey, roots, builder.size, report)
    for witness_key, view in witnesses:
        report.witnesses += 1
        if view is None:
            if checkpoints:
                problems.append(
                    f"witness {witness_key.name} has seen none of the {len(checkpoints)} "
                    f"checkpoints of {store.name}: it was never reached, or was replaced"
                )
            continue
        if view.size > builder.size:
            problems.append(
                f"witness {witness_key.name} cosigned size {view.size}, but the ledger holds "
                f"only {builder.size} entries: it was rolled back or truncated"
            )
        elif roots.get(view.size) != view.root:
            problems.append(
                f"witness {witness_key.name} cosigned a different root at size {view.size}: "
                "the ledger's history was rewritten (a fork)"
            )
    return report


def _sequence_problem(seqs: list[int], expected: int) -> str | None:
    for seq in seqs:
        if seq != expected:
            return (
                f"entry {expected} is missing (the next stored entry is {seq})"
                if seq > expected
                else f"entry {seq} appears out of order after entry {expected - 1}"
            )
        expected = seq + 1
    return None


def _check_leaf_tiles(
    store: LedgerStore, base: int, rows: list[tuple[int, bytes]], tiles: list[Levels]
) -> str | None:
    """The stored level-0 tiles of a batch against the leaves recomputed from its entries
    (which start at leaf ``base``, a tile edge)."""
    first = base // TILE_WIDTH
    stored = {
        index: (hashes, interior)
        for index, hashes, interior in store.stored_tiles(0, first, first + len(tiles) - 1)
    }
    for n, levels in enumerate(tiles):
        hashes, interior = stored.get(first + n, (b"", None))
        if hashes != b"".join(levels[0]):
            offset = 0
            for offset, leaf in enumerate(levels[0]):
                if hashes[offset * HASH : (offset + 1) * HASH] != leaf:
                    break
            return (
                f"entry {rows[n * TILE_WIDTH + offset][0]} does not match the tree's leaf hash "
                "for it (the entry or the stored hash was changed)"
            )
        if interior is not None and interior != interior_bytes(levels):
            return _tile_problem(0, first + n)
    return None


def _check_upper_tiles(store: LedgerStore, hashes: list[bytes]) -> str | None:
    """Every tile above level 0 against the roots of the full tiles below it."""
    level = 1
    while hashes:
        count = -(-len(hashes) // TILE_WIDTH)
        stored = {
            index: (found, interior)
            for index, found, interior in store.stored_tiles(level, 0, count - 1)
        }
        above: list[bytes] = []
        for index in range(count):
            levels = tile_levels(hashes[index * TILE_WIDTH : (index + 1) * TILE_WIDTH])
            found, interior = stored.get(index, (b"", None))
            if found != b"".join(levels[0]) or (
                interior is not None and interior != interior_bytes(levels)
            ):
                return _tile_problem(level, index)
            if len(levels[0]) == TILE_WIDTH:
                above.append(levels[-1][0])
        hashes, level = above, level + 1
    return None


def _tile_problem(level: int, index: int) -> str:
    span = TILE_WIDTH ** (level + 1)
    return (
        f"tile {level}/{index} (entries {index * span} to {(index + 1) * span - 1}) does not "
        "match the entries: its stored hashes were changed, and proofs served from it "
        "would not verify"
    )


def _check_checkpoints(
    store: LedgerStore,
    checkpoints: Sequence[StoredCheckpoint],
    vkey: VerifierKey,
    roots: dict[int, bytes],
    count: int,
    report: VerifyReport,
) -> None:
    previous: StoredCheckpoint | None = None
    for item in checkpoints:
        report.checkpoints += 1
        label = f"checkpoint #{item.checkpoint_id} (size {item.size})"
        try:
            signed = open_checkpoint(item.note, vkey)
        except VerificationError as error:
            report.problems.append(f"{label} is not signed by the ledger key: {error}")
            return
        if (signed.size, signed.root) != (item.size, item.root):
            report.problems.append(f"{label}: its stored size or root differs from its signed note")
            return
        if item.size > count:
            report.problems.append(
                f"{label} covers more entries than the ledger holds ({count}): "
                "entries were removed or the tables rolled back"
            )
            return
        if roots.get(item.size) != item.root:
            since = previous.size if previous else 0
            report.problems.append(
                f"{label} does not match the entries: an entry between {since} and "
                f"{item.size - 1} was changed after it was signed"
            )
            return
        if previous is not None:
            if item.size < previous.size:
                report.problems.append(f"{label} is smaller than the checkpoint before it")
                return
            try:
                proof = store.consistency_proof(previous.size, item.size)
                verify_consistency(previous.size, item.size, proof, previous.root, item.root)
            except (VerificationError, LedgerCorrupt) as error:
                report.problems.append(f"{label} is not consistent with the one before: {error}")
                return
        previous = item


def cosigned_by(note: str, witness: VerifierKey) -> bool:
    try:
        verify_cosignature(note, witness)
    except VerificationError:
        return False
    return True
