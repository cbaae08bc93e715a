"""The tiled ledger store on SQLite and PostgreSQL: appends, roots and proofs agree with
the RFC tree over the same entries, across tile boundaries, under concurrent writers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import MetaData, select, update

from carevault.config import Settings
from carevault.db import make_engine, write_transaction
from carevault.ledger.store import TILE_WIDTH, LedgerEntry, LedgerStore
from carevault.ledger.tables import ledger_tables
from carevault.ledger.verifier import leaf_hash, root_of, verify_consistency, verify_inclusion
from carevault.ledger.writer import LedgerWriter


@pytest.fixture
def store(settings: Settings) -> Iterator[LedgerStore]:
    engine = make_engine(settings.resolved_database_url)
    metadata = MetaData()
    tables = ledger_tables(metadata, "t")
    settings.home.mkdir(parents=True, exist_ok=True)
    metadata.create_all(engine)
    yield LedgerStore(engine, tables, "test")
    engine.dispose()


def entry(i: int) -> LedgerEntry:
    return LedgerEntry(1_000_000 + i, f'{{"n":{i}}}'.encode(), subject=f"p{i % 7}", actor="a")


def append(store: LedgerStore, start: int, count: int) -> None:
    with write_transaction(store.engine) as connection:
        store.append(connection, [entry(i) for i in range(start, start + count)])


def test_roots_and_proofs_match_the_rfc_tree_across_tile_boundaries(store: LedgerStore) -> None:
    leaves: list[bytes] = []
    # Batches that end inside, exactly at and across tile edges (256 and 256² leaves).
    for count in [1, 2, 253, 1, 255, 256, 300, 2 * TILE_WIDTH * 3]:
        append(store, len(leaves), count)
        leaves.extend(leaf_hash(entry(i).data) for i in range(len(leaves), len(leaves) + count))
        size, head_root = store.head()
        assert size == len(leaves)
        assert head_root == root_of(leaves) == store.root(size)
    size = len(leaves)
    for index in [0, 1, 255, 256, 257, 511, 512, size // 2, size - 1]:
        proof = store.inclusion_proof(index, size)
        verify_inclusion(leaves[index], index, size, proof, root_of(leaves))
    for old in [1, 3, 256, 257, 768, size - 1]:
        proof = store.consistency_proof(old, size)
        verify_consistency(old, size, proof, root_of(leaves[:old]), root_of(leaves))
    assert store.stored_leaf_hashes(250, 10) == leaves[250:260]
    assert [seq for seq, _ in store.find(subject="p3", limit=3)] == [3, 10, 17]


def test_a_rolled_back_append_leaves_nothing(store: LedgerStore) -> None:
    append(store, 0, 10)
    before = store.head()
    with pytest.raises(RuntimeError), write_transaction(store.engine) as connection:
        store.append(connection, [entry(i) for i in range(10, 20)])
        raise RuntimeError("the write this entry described failed")
    assert store.head() == before
    assert len(list(store.entries())) == 10


def test_group_commit_under_concurrent_writers_loses_nothing(store: LedgerStore) -> None:
    writer = LedgerWriter(store)
    threads, each = 8, 60
    positions: list[tuple[int, int]] = []
    lock = threading.Lock()

    def work(worker: int) -> None:
        for i in range(each):
            where = writer.append([entry(worker * 1000 + i)])
            with lock:
                positions.append(where)

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    writer.close()
    size, root = store.head()
    assert size == threads * each
    assert sorted(start for start, _ in positions) == list(range(size))
    stored = [leaf_hash(data) for _, data in store.entries()]
    assert root_of(stored) == root


def test_verify_over_many_tiles_with_checkpoints_between(store: LedgerStore) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from sqlalchemy import update

    from carevault.ledger.checkpoints import Checkpoints, CheckpointSigner
    from carevault.ledger.verify import verify_ledger

    signer = CheckpointSigner("test/audit", Ed25519PrivateKey.generate())
    checkpoints = Checkpoints(store, signer, [], lambda: 1)
    for count in [300, 212, 188, 1000]:  # checkpoints at 300, 512 (a tile edge), 700, 1700
        append(store, store.head()[0], count)
        checkpoints.make("test")
    report = verify_ledger(store, checkpoints.all(), signer.vkey, batch=333)
    assert report.ok, report.problems
    assert report.entries == 1700 and report.checkpoints == 4
    with write_transaction(store.engine) as connection:
        connection.execute(
            update(store.tables.entry).where(store.tables.entry.c.seq == 600).values(entry=b"{}")
        )
    fresh = LedgerStore(store.engine, store.tables, store.name)
    problems = verify_ledger(fresh, checkpoints.all(), signer.vkey, batch=333).problems
    assert problems[0].startswith("entry 600 does not match")
    assert any("between 512 and 699" in problem for problem in problems), problems


def _checkpointed(store: LedgerStore, sizes: list[int]) -> tuple[Any, Any]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from carevault.ledger.checkpoints import Checkpoints, CheckpointSigner

    signer = CheckpointSigner("test/audit", Ed25519PrivateKey.generate())
    checkpoints = Checkpoints(store, signer, [], lambda: 1)
    for size in sizes:
        append(store, store.head()[0], size - store.head()[0])
        checkpoints.make("test")
    return checkpoints, signer


def _alter_interior(store: LedgerStore, level: int, index: int, position: int) -> None:
    tile = store.tables.tile
    where = (tile.c.ledger == store.name, tile.c.level == level, tile.c.tile_index == index)
    with write_transaction(store.engine) as connection:
        interior = bytearray(connection.execute(select(tile.c.interior).where(*where)).scalar_one())
        interior[position * 32] ^= 1
        connection.execute(update(tile).where(*where).values(interior=bytes(interior)))


@pytest.mark.parametrize(
    ("level", "index", "position"),
    [(0, 2, 0), (0, 2, 254), (0, 6, 40), (1, 0, 0), (1, 0, 3)],
    ids=[
        "tile-0/2-first-pair",
        "tile-0/2-root",
        "right-edge-tile",
        "tile-1/0-pair",
        "tile-1/0-top",
    ],
)
def test_an_altered_interior_hash_is_named(
    store: LedgerStore, level: int, index: int, position: int
) -> None:
    """Proofs read interior nodes instead of hashing again: verify checks every one."""
    from carevault.ledger.verify import verify_ledger

    checkpoints, signer = _checkpointed(store, [1000, 1700])  # six full tiles and one partial
    assert verify_ledger(store, checkpoints.all(), signer.vkey).ok
    _alter_interior(store, level, index, position)
    fresh = LedgerStore(store.engine, store.tables, store.name)
    problems = verify_ledger(fresh, checkpoints.all(), signer.vkey, batch=512).problems
    assert problems, "an altered interior node went unnoticed"
    assert problems[0].startswith(f"tile {level}/{index} "), problems


def test_tiles_written_before_they_kept_their_interior_still_serve(store: LedgerStore) -> None:
    """Rows from before records_0003 have no interior: it is computed from their hashes."""
    from carevault.ledger.verify import verify_ledger

    checkpoints, signer = _checkpointed(store, [700, 1300])
    leaves = [leaf_hash(data) for _, data in store.entries()]
    with write_transaction(store.engine) as connection:
        connection.execute(update(store.tables.tile).values(interior=None))
    fresh = LedgerStore(store.engine, store.tables, store.name)
    assert fresh.root(1300) == root_of(leaves)
    for index in (0, 255, 256, 699, 1299):
        verify_inclusion(
            leaves[index], index, 1300, fresh.inclusion_proof(index, 1300), root_of(leaves)
        )
    verify_consistency(
        700, 1300, fresh.consistency_proof(700, 1300), root_of(leaves[:700]), root_of(leaves)
    )
    append(fresh, 1300, 500)  # the right edge is read back from hashes alone
    leaves += [leaf_hash(entry(i).data) for i in range(1300, 1800)]
    assert fresh.head() == (1800, root_of(leaves))
    checkpoints.make("test")
    report = verify_ledger(fresh, checkpoints.all(), signer.vkey)
    assert report.ok and report.entries == 1800, report.problems
