"""The ledger benchmark's measurements, each on a store it is handed.

Every timed path goes through the public store, writer, checkpoint and verifier
APIs, database reads included; nothing is measured on in-memory shortcuts.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.ledger_workload import CountingStore, RawHasher, entries
from carevault.db import write_transaction
from carevault.ledger.checkpoints import Checkpoints, CheckpointSigner
from carevault.ledger.store import LedgerStore
from carevault.ledger.verifier import leaf_hash, verify_consistency, verify_inclusion
from carevault.ledger.verify import verify_ledger
from carevault.ledger.writer import LedgerWriter


@dataclass
class Latencies:
    """Seconds per operation, summarised in milliseconds."""

    samples: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        ordered = sorted(self.samples)
        if not ordered:
            return {"n": 0}

        def at(fraction: float) -> float:
            return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1e3

        return {
            "n": len(ordered),
            "mean_ms": sum(ordered) / len(ordered) * 1e3,
            "p50_ms": at(0.50),
            "p99_ms": at(0.99),
            "max_ms": ordered[-1] * 1e3,
        }


def checkpoints_for(store: LedgerStore) -> Checkpoints:
    """Checkpoints signed by a fresh Ed25519 key, with no witnesses."""
    signer = CheckpointSigner(f"bench.carevault/{store.name}", Ed25519PrivateKey.generate())
    return Checkpoints(store, signer, [], lambda: time.time_ns() // 1000)


def _prove(store: LedgerStore, data: bytes, index: int, size: int) -> None:
    root = store.root(size)
    proof = store.inclusion_proof(index, size)
    verify_inclusion(leaf_hash(data), index, size, proof, root)


def _prove_signed(checkpoints: Checkpoints, data: bytes, index: int) -> None:
    made = checkpoints.make("bench")
    proof = checkpoints.store.inclusion_proof(index, made.size)
    verify_inclusion(leaf_hash(data), index, made.size, proof, made.root)


def one_per_transaction(
    store: CountingStore, seconds: float, first: int, probes: int
) -> dict[str, object]:
    """Durable appends, each in its own write transaction (one commit, one fsync).

    Then, with nothing else running, ``probes`` more: append, compute the root of the
    new size from the tiles, fetch the inclusion proof and verify it.
    """
    commits = Latencies()
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        batch = entries(first + count, 1)
        began = time.perf_counter()
        with write_transaction(store.engine) as connection:
            store.append(connection, batch)
        commits.samples.append(time.perf_counter() - began)
        count += 1
    elapsed = time.perf_counter() - started
    provable = Latencies()
    for number in range(probes):
        entry = entries(first + count + number, 1)[0]
        began = time.perf_counter()
        with write_transaction(store.engine) as connection:
            index, size = store.append(connection, [entry])
        _prove(store, entry.data, index, size)
        provable.samples.append(time.perf_counter() - began)
    return {
        "appends": count,
        "seconds": elapsed,
        "appends_per_s": count / elapsed,
        "commit": commits.summary(),
        "provable_idle": provable.summary(),
    }


def concurrent(
    store: CountingStore, threads: int, seconds: float, first: int, *, signed: bool
) -> dict[str, object]:
    """Group commit: ``threads`` callers each append one entry at a time via the writer.

    A probe thread appends one more entry every 0.1 s and times it until provable:
    against a root computed from the tiles, or (``signed``) against a checkpoint
    signed for it, as the proof endpoint does when the ledger has grown.
    """
    writer = LedgerWriter(store)
    checkpoints = checkpoints_for(store)
    stop = threading.Event()
    counts = [0] * threads
    errors: list[Exception] = []
    provable = Latencies()
    stride = 10_000_000

    def worker(slot: int) -> None:
        base = first + slot * stride
        try:
            while not stop.is_set():
                writer.append(entries(base + counts[slot], 1))
                counts[slot] += 1
        except Exception as error:  # reported after the run, from the main thread
            errors.append(error)

    def probe() -> None:
        base = first + threads * stride
        number = 0
        try:
            while not stop.wait(0.1):
                entry = entries(base + number, 1)[0]
                began = time.perf_counter()
                index, size = writer.append([entry])
                if signed:
                    _prove_signed(checkpoints, entry.data, index)
                else:
                    _prove(store, entry.data, index, size)
                provable.samples.append(time.perf_counter() - began)
                number += 1
        except Exception as error:  # reported after the run, from the main thread
            errors.append(error)

    workers = [threading.Thread(target=worker, args=(slot,)) for slot in range(threads)]
    workers.append(threading.Thread(target=probe))
    calls_before, entries_before = store.counter.calls, store.counter.entries
    started = time.perf_counter()
    for thread in workers:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - started
    writer.close()
    if errors:
        raise RuntimeError(f"{len(errors)} appends failed, first: {errors[0]!r}")
    commits = store.counter.calls - calls_before
    appended = store.counter.entries - entries_before
    return {
        "threads": threads,
        "probe": "signed checkpoint" if signed else "fresh root",
        "appends": appended,
        "seconds": elapsed,
        "appends_per_s": appended / elapsed,
        "commits": commits,
        "mean_batch": appended / max(commits, 1),
        "provable": provable.summary(),
    }


def build(store: CountingStore, target: int, batch: int, raw: RawHasher) -> dict[str, float]:
    """Grow the ledger to ``target`` entries in big transactions; hash them raw too."""
    size, _ = store.head()
    appending = generating = appending_cpu = 0.0
    added = 0
    while size < target:
        count = min(batch, target - size)
        began = time.perf_counter()
        chunk = entries(size, count)
        generating += time.perf_counter() - began
        began, began_cpu = time.perf_counter(), time.thread_time()
        with write_transaction(store.engine) as connection:
            _, size = store.append(connection, chunk)
        appending += time.perf_counter() - began
        appending_cpu += time.thread_time() - began_cpu
        raw.add([entry.data for entry in chunk])
        added += count
    return {
        "entries": added,
        "append_seconds": appending,
        "append_cpu_seconds": appending_cpu,
        "generate_seconds": generating,
        "entries_per_s": added / appending if appending else 0.0,
    }


Fetch = Callable[[LedgerStore, int], list[bytes]]
Check = Callable[[list[bytes], int], None]


def _time_proofs(store: LedgerStore, samples: int, fetch: Fetch, check: Check) -> dict[str, object]:
    cold, warm, verifying = Latencies(), Latencies(), Latencies()
    warm_store = LedgerStore(store.engine, store.tables, store.name)
    for sample in range(samples):
        fresh = LedgerStore(store.engine, store.tables, store.name)
        began = time.perf_counter()
        fetch(fresh, sample)
        cold.samples.append(time.perf_counter() - began)
        fetch(warm_store, sample)
    lengths = 0
    for sample in range(samples):
        began = time.perf_counter()
        proof = fetch(warm_store, sample)
        warm.samples.append(time.perf_counter() - began)
        began = time.perf_counter()
        check(proof, sample)
        verifying.samples.append(time.perf_counter() - began)
        lengths += len(proof)
    return {
        "cold": cold.summary(),
        "warm": warm.summary(),
        "verify": verifying.summary(),
        "hashes": lengths / samples,
    }


def proofs(store: LedgerStore, size: int, samples: int, seed: int) -> dict[str, object]:
    """Inclusion and consistency proofs at ``size``: fetch (DB reads included) and verify.

    Cold: a new store object per proof (no tile cache) at indices not asked before.
    Warm: the same indices again through one store whose cache they filled.
    """
    rng = random.Random(seed)
    root = store.root(size)
    indices = [rng.randrange(size) for _ in range(samples)]
    olds = [rng.randrange(1, size) for _ in range(samples)]
    old_roots = {old: store.root(old) for old in olds}
    leaves = {index: leaf_hash(_entry_data(store, index)) for index in indices}

    def inclusion(reader: LedgerStore, sample: int) -> list[bytes]:
        return reader.inclusion_proof(indices[sample], size)

    def check_inclusion(proof: list[bytes], sample: int) -> None:
        index = indices[sample]
        verify_inclusion(leaves[index], index, size, proof, root)

    def consistency(reader: LedgerStore, sample: int) -> list[bytes]:
        return reader.consistency_proof(olds[sample], size)

    def check_consistency(proof: list[bytes], sample: int) -> None:
        old = olds[sample]
        verify_consistency(old, size, proof, old_roots[old], root)

    return {
        "size": size,
        "samples": samples,
        "inclusion": _time_proofs(store, samples, inclusion, check_inclusion),
        "consistency": _time_proofs(store, samples, consistency, check_consistency),
    }


def _entry_data(store: LedgerStore, index: int) -> bytes:
    data = store.entry(index)
    if data is None:
        raise LookupError(f"entry {index} is missing")
    return data


def full_verify(store: LedgerStore, raw: RawHasher) -> dict[str, object]:
    """``verify_ledger`` over the whole ledger and one signed checkpoint at its head."""
    checkpoints = checkpoints_for(store)
    made = checkpoints.make("bench")
    began, began_cpu = time.perf_counter(), time.thread_time()
    report = verify_ledger(store, [made], checkpoints.signer.vkey)
    elapsed, cpu = time.perf_counter() - began, time.thread_time() - began_cpu
    raw_root, raw_seconds, raw_cpu, hashes = raw.snapshot()
    return {
        "entries": report.entries,
        "ok": report.ok,
        "problems": report.problems[:3],
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "raw_seconds": raw_seconds,
        "raw_cpu_seconds": raw_cpu,
        "raw_hashes": hashes,
        "ratio": elapsed / raw_seconds,
        "cpu_ratio": cpu / raw_cpu,
        "raw_root_matches": raw_root == made.root and raw.leaves == made.size,
        "root": made.root.hex(),
    }


def pymerkle_check(store: LedgerStore, sizes: Sequence[int]) -> dict[str, object]:
    """The ledger's roots against pymerkle's, over the same first entries."""
    from pymerkle import InmemoryTree

    checked: dict[str, object] = {}
    for size in sizes:
        tree = InmemoryTree(algorithm="sha256")
        began = time.perf_counter()
        for entry in entries(0, size):
            tree.append_entry(entry.data)
        theirs = bytes(tree.get_root())
        seconds = time.perf_counter() - began
        ours = store.root(size)
        checked[str(size)] = {
            "match": theirs == ours,
            "root": ours.hex(),
            "pymerkle_root": theirs.hex(),
            "pymerkle_seconds": seconds,
        }
    return checked
