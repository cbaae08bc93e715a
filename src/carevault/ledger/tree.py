"""The Merkle tree of RFC 6962 / 9162 over stored complete subtrees.

Every function here takes ``read``: given (level, index) pairs, it returns the hash
of each complete subtree of 2**level leaves starting at leaf index * 2**level. A
function first works out every hash it needs, then reads them in one call, so a
proof over a tiled store costs one round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from carevault.ledger.verifier import EMPTY_ROOT, node_hash

__all__ = ["EMPTY_ROOT", "Reader", "consistency_proof", "inclusion_proof", "tree_hash"]

Reader = Callable[[Sequence[tuple[int, int]]], list[bytes]]
Range = tuple[int, int]


def _split(count: int) -> int:
    """The largest power of two smaller than ``count`` (count > 1)."""
    return 1 << ((count - 1).bit_length() - 1)


def _pieces(start: int, end: int) -> list[tuple[int, int]]:
    """The complete subtrees that make up the RFC subtree over leaves [start, end).

    Such a range starts at a multiple of a power of two at least its length, so it is
    the binary decomposition of its length, largest first.
    """
    pieces: list[tuple[int, int]] = []
    position = start
    remaining = end - start
    for level in range(remaining.bit_length() - 1, -1, -1):
        if remaining & (1 << level):
            pieces.append((level, position >> level))
            position += 1 << level
    return pieces


def _hash_ranges(ranges: Sequence[Range], read: Reader) -> list[bytes]:
    """MTH of each range, reading every complete subtree they need at once."""
    pieces = [_pieces(start, end) for start, end in ranges]
    flat = [piece for group in pieces for piece in group]
    hashes = iter(read(flat)) if flat else iter(())
    results: list[bytes] = []
    for group in pieces:
        values = [next(hashes) for _ in group]
        value = values[-1]
        for left in reversed(values[:-1]):
            value = node_hash(left, value)
        results.append(value)
    return results


def tree_hash(size: int, read: Reader) -> bytes:
    """The root of the tree of the first ``size`` leaves."""
    if size == 0:
        return EMPTY_ROOT
    return _hash_ranges([(0, size)], read)[0]


def inclusion_proof(index: int, size: int, read: Reader) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 6962 §2.1.1, ordered from the leaf upwards."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    siblings: list[Range] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            siblings.append((start + k, end))
            end = start + k
        else:
            siblings.append((start, start + k))
            start += k
    return _hash_ranges(list(reversed(siblings)), read)


def consistency_proof(old_size: int, new_size: int, read: Reader) -> list[bytes]:
    """PROOF(old_size, D[0:new_size]) of RFC 6962 §2.1.2."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    ranges: list[Range] = []
    m, start, end, complete = old_size, 0, new_size, True
    while m != end - start:
        n = end - start
        k = _split(n)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
            m -= k
            complete = False
    if not complete:
        ranges.append((start, end))
    return _hash_ranges(list(reversed(ranges)), read)
