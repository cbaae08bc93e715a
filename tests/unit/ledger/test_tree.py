"""The Merkle tree against RFC 6962's test vectors, hand-computed trees, every proof
for sizes 1..64, pymerkle, and properties over random trees and tampered proofs."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carevault.ledger import tree
from carevault.ledger.verifier import (
    EMPTY_ROOT,
    VerificationError,
    leaf_hash,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

# The leaves and roots of the reference test suite of RFC 6962's authors
# (certificate-transparency, merkle_tree_test): roots of the first 1..8 leaves.
RFC_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
RFC_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


class MemoryTree:
    """Complete-subtree hashes computed from the leaves, as the tile store serves them."""

    def __init__(self, entries: Sequence[bytes]) -> None:
        self.leaves = [leaf_hash(entry) for entry in entries]
        self.reads = 0

    def read(self, wanted: Sequence[tuple[int, int]]) -> list[bytes]:
        self.reads += 1
        found = []
        for level, index in wanted:
            start, end = index << level, (index + 1) << level
            assert end <= len(self.leaves), "asked for a subtree that is not complete"
            found.append(root_of(self.leaves[start:end]))
        return found


def entries(count: int) -> list[bytes]:
    return [f"entry {i}".encode() for i in range(count)]


def test_empty_tree_is_the_hash_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert tree.tree_hash(0, MemoryTree([]).read) == EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_match_the_rfc_6962_vectors(size: int) -> None:
    memory = MemoryTree(RFC_LEAVES[:size])
    assert tree.tree_hash(size, memory.read).hex() == RFC_ROOTS[size - 1]


def test_three_leaves_by_hand() -> None:
    a, b, c = (hashlib.sha256(b"\x00" + x).digest() for x in (b"a", b"b", b"c"))
    ab = hashlib.sha256(b"\x01" + a + b).digest()
    expected = hashlib.sha256(b"\x01" + ab + c).digest()  # the last leaf is never duplicated
    assert tree.tree_hash(3, MemoryTree([b"a", b"b", b"c"]).read) == expected


def test_seven_leaves_split_at_four() -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(7)]
    left = node_hash(node_hash(leaves[0], leaves[1]), node_hash(leaves[2], leaves[3]))
    right = node_hash(node_hash(leaves[4], leaves[5]), leaves[6])
    assert tree.tree_hash(7, MemoryTree([bytes([i]) for i in range(7)]).read) == node_hash(
        left, right
    )


def test_a_proof_reads_the_store_once() -> None:
    memory = MemoryTree(entries(1000))
    tree.inclusion_proof(377, 1000, memory.read)
    tree.consistency_proof(333, 1000, memory.read)
    assert memory.reads == 2


@pytest.mark.parametrize("size", range(1, 65))
def test_every_inclusion_proof_verifies_up_to_64(size: int) -> None:
    memory = MemoryTree(entries(size))
    root = tree.tree_hash(size, memory.read)
    assert root == root_of(memory.leaves)
    for index in range(size):
        proof = tree.inclusion_proof(index, size, memory.read)
        verify_inclusion(memory.leaves[index], index, size, proof, root)
        wrong = (index + 1) % size
        if wrong != index:
            with pytest.raises(VerificationError):
                verify_inclusion(memory.leaves[wrong], index, size, proof, root)


@pytest.mark.parametrize("new_size", range(1, 65))
def test_every_consistency_proof_verifies_up_to_64(new_size: int) -> None:
    memory = MemoryTree(entries(new_size))
    new_root = tree.tree_hash(new_size, memory.read)
    for old_size in range(0, new_size + 1):
        old_root = tree.tree_hash(old_size, memory.read)
        proof = tree.consistency_proof(old_size, new_size, memory.read)
        verify_consistency(old_size, new_size, proof, old_root, new_root)
        if 0 < old_size < new_size:
            forged = leaf_hash(b"forged")
            with pytest.raises(VerificationError):
                verify_consistency(old_size, new_size, proof, forged, new_root)


def test_consistency_rejects_a_shrinking_or_forked_log() -> None:
    memory = MemoryTree(entries(10))
    with pytest.raises(VerificationError, match="cannot precede"):
        verify_consistency(10, 5, [], EMPTY_ROOT, EMPTY_ROOT)
    root = tree.tree_hash(10, memory.read)
    with pytest.raises(VerificationError, match="two different roots"):
        verify_consistency(10, 10, [], root, leaf_hash(b"fork"))
    with pytest.raises(VerificationError, match="empty"):
        verify_consistency(4, 10, [], tree.tree_hash(4, memory.read), root)


def test_inclusion_rejects_out_of_range_and_wrong_lengths() -> None:
    memory = MemoryTree(entries(5))
    root = tree.tree_hash(5, memory.read)
    proof = tree.inclusion_proof(2, 5, memory.read)
    with pytest.raises(VerificationError, match="outside"):
        verify_inclusion(memory.leaves[2], 5, 5, proof, root)
    with pytest.raises(VerificationError, match="shorter"):
        verify_inclusion(memory.leaves[2], 2, 5, proof[:-1], root)
    with pytest.raises(VerificationError, match="longer"):
        verify_inclusion(memory.leaves[2], 2, 5, [*proof, root], root)
    with pytest.raises(VerificationError, match="32 are required"):
        verify_inclusion(memory.leaves[2], 2, 5, [b"short"], root)
    with pytest.raises(ValueError):
        tree.inclusion_proof(5, 5, memory.read)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 64, 100, 1000])
def test_roots_agree_with_pymerkle(size: int) -> None:
    from pymerkle import InmemoryTree

    reference = InmemoryTree(algorithm="sha256")
    data = entries(size)
    for item in data:
        reference.append_entry(item)
    assert tree.tree_hash(size, MemoryTree(data).read) == reference.get_root()


@given(
    size=st.integers(min_value=1, max_value=300),
    data=st.data(),
)
def test_any_inclusion_proof_verifies_and_any_altered_one_fails(
    size: int, data: st.DataObject
) -> None:
    memory = MemoryTree(entries(size))
    root = tree.tree_hash(size, memory.read)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    proof = tree.inclusion_proof(index, size, memory.read)
    verify_inclusion(memory.leaves[index], index, size, proof, root)
    if proof:
        position = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        bit = data.draw(st.integers(min_value=0, max_value=255))
        altered = list(proof)
        altered[position] = bytes([altered[position][0] ^ (1 << (bit % 8))]) + altered[position][1:]
        with pytest.raises(VerificationError):
            verify_inclusion(memory.leaves[index], index, size, altered, root)
    if size > 1:
        other = data.draw(st.integers(min_value=0, max_value=size - 1).filter(lambda i: i != index))
        with pytest.raises(VerificationError):
            verify_inclusion(memory.leaves[index], other, size, proof, root)


@given(new_size=st.integers(min_value=2, max_value=300), data=st.data())
def test_any_consistency_proof_verifies_and_any_altered_one_fails(
    new_size: int, data: st.DataObject
) -> None:
    memory = MemoryTree(entries(new_size))
    old_size = data.draw(st.integers(min_value=1, max_value=new_size - 1))
    old_root = tree.tree_hash(old_size, memory.read)
    new_root = tree.tree_hash(new_size, memory.read)
    proof = tree.consistency_proof(old_size, new_size, memory.read)
    verify_consistency(old_size, new_size, proof, old_root, new_root)
    position = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
    altered = list(proof)
    altered[position] = hashlib.sha256(altered[position]).digest()
    with pytest.raises(VerificationError):
        verify_consistency(old_size, new_size, altered, old_root, new_root)
    with pytest.raises(VerificationError):
        verify_consistency(old_size, new_size, proof[:-1], old_root, new_root)
