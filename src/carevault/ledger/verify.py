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
from carevault.ledger.store import HASH, LedgerCorrupt, LedgerStore
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

TILE = 256


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

    def add_many(self, leaves: list[bytes], wanted: Sequence[int], roots: dict[int, bytes]) -> None:
        """Add ``leaves`` in order, recording the root at every size in ``wanted``.

        Aligned runs of 256 leaves are folded level by level and added as one subtree,
        which is what keeps a full verification near the cost of the hashing itself.
        """
        position = 0
        count = len(leaves)
        while position < count:
            size = self.size
            end = size + TILE
            if (
                size % TILE == 0
                and position + TILE <= count
                and bisect_right(wanted, end) == bisect_right(wanted, size)
            ):
                level = leaves[position : position + TILE]
                while len(level) > 1:
                    # node_hash, inlined: this line is most of a full verification's time.
                    level = [
                        sha256(b"\x01" + level[i] + level[i + 1]).digest()
                        for i in range(0, len(level), 2)
                    ]
                self.add_subtree(8, level[0])
                position += TILE
                continue
            self.add(leaves[position])
            position += 1
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
    for rows in store.entry_batches(batch=batch):
        first, last = int(rows[0][0]), int(rows[-1][0])
        if first_entry_problem is None and (first, last) != (expected, expected + len(rows) - 1):
            # Sequence numbers are unique and sorted: a batch that neither starts where
            # the last ended nor spans exactly its length has a gap.
            first_entry_problem = _sequence_problem([int(seq) for seq, _ in rows], expected)
        leaves = [sha256(b"\x00" + data).digest() for _, data in rows]
        builder.add_many(leaves, marks, roots)
        if first_entry_problem is None:
            stored = store.stored_leaf_blob(first, len(leaves))
            if stored != b"".join(leaves):
                first_entry_problem = _leaf_problem(rows, leaves, stored)
        expected = last + 1
        if progress is not None:
            progress(builder.size)
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


def _leaf_problem(rows: list[tuple[int, bytes]], leaves: list[bytes], stored: bytes) -> str:
    """Name the first entry of a batch whose leaf hash differs from the stored one."""
    offset = 0
    for offset, leaf in enumerate(leaves):
        if stored[offset * HASH : (offset + 1) * HASH] != leaf:
            break
    return (
        f"entry {rows[offset][0]} does not match the tree's leaf hash for it "
        "(the entry or the stored hash was changed)"
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
