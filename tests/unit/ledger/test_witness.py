"""Signed notes, checkpoints and the witness protocol (C2SP tlog-witness): a witness
cosigns only what extends what it saw, answering as the protocol says otherwise."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from carevault.ledger import tree
from carevault.ledger.checkpoints import CheckpointSigner
from carevault.ledger.verifier import (
    VerificationError,
    VerifierKey,
    leaf_hash,
    open_checkpoint,
    parse_checkpoint,
    parse_note,
    root_of,
    verify_cosignature,
)
from carevault.ledger.witness import (
    DirectoryWitness,
    HttpWitness,
    Witness,
    WitnessCore,
    WitnessRefused,
    parse_add_checkpoint,
    serve_witness,
)

ORIGIN = "clinic.example/audit"


class Log:
    def __init__(self) -> None:
        self.signer = CheckpointSigner(ORIGIN, Ed25519PrivateKey.generate())
        self.leaves = [leaf_hash(f"e{i}".encode()) for i in range(40)]

    def read(self, wanted: list[tuple[int, int]]) -> list[bytes]:
        return [root_of(self.leaves[i << level : (i + 1) << level]) for level, i in wanted]

    def checkpoint(self, size: int) -> str:
        return self.signer.sign(size, root_of(self.leaves[:size]))

    def proof(self, old: int, new: int) -> list[bytes]:
        return tree.consistency_proof(old, new, self.read)


@pytest.fixture
def log() -> Log:
    return Log()


@pytest.fixture
def core(tmp_path: Path, log: Log) -> WitnessCore:
    return WitnessCore(tmp_path / "witness", "witness.example/w1", [log.signer.vkey])


def test_a_checkpoint_round_trips_through_its_text(log: Log) -> None:
    note = log.checkpoint(7)
    assert note.startswith(f"{ORIGIN}\n7\n")
    checkpoint = open_checkpoint(note, log.signer.vkey)
    assert checkpoint.size == 7 and checkpoint.root == root_of(log.leaves[:7])
    assert VerifierKey.parse(log.signer.vkey.render()) == log.signer.vkey
    with pytest.raises(VerificationError, match="does not verify"):
        open_checkpoint(note.replace("\n7\n", "\n8\n"), log.signer.vkey)
    other = CheckpointSigner(ORIGIN, Ed25519PrivateKey.generate())
    with pytest.raises(VerificationError):
        open_checkpoint(other.sign(7, root_of(log.leaves[:7])), log.signer.vkey)


@pytest.mark.parametrize(
    "text",
    ["", "origin\n1\n", "origin\n01\nAAAA\n", "origin\nx\nAAAA\n", "origin\n1\nnot base64!\n"],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(VerificationError):
        parse_checkpoint(text)


def test_malformed_notes_are_refused() -> None:
    for text in ["no newline", "body\n", "body\n\nnot a signature\n", "body\n\n\u2014 k !!!\n"]:
        with pytest.raises(VerificationError):
            parse_note(text)


def test_the_witness_cosigns_only_consistent_growth(core: WitnessCore, log: Log) -> None:
    witness_key = core.verifier_key()
    lines = core.add_checkpoint(0, [], log.checkpoint(10))
    assert verify_cosignature(log.checkpoint(10) + "".join(lines), witness_key) > 0
    assert core.latest(ORIGIN) is not None and core.latest(ORIGIN).size == 10  # type: ignore[union-attr]

    with pytest.raises(WitnessRefused) as stale:
        core.add_checkpoint(0, [], log.checkpoint(20))
    assert stale.value.status == 409 and stale.value.known_size == 10
    with pytest.raises(WitnessRefused) as backwards:
        core.add_checkpoint(30, [], log.checkpoint(20))
    assert backwards.value.status == 400
    with pytest.raises(WitnessRefused) as bad_proof:
        core.add_checkpoint(10, [leaf_hash(b"x")] * 3, log.checkpoint(20))
    assert bad_proof.value.status == 422

    fork = Log()
    fork.signer = log.signer
    fork.leaves[3] = leaf_hash(b"rewritten")
    with pytest.raises(WitnessRefused) as forked:
        core.add_checkpoint(10, fork.proof(10, 20), fork.checkpoint(20))
    assert forked.value.status == 422
    forged = CheckpointSigner(ORIGIN, Ed25519PrivateKey.generate())
    with pytest.raises(WitnessRefused) as unsigned:
        core.add_checkpoint(10, log.proof(10, 20), forged.sign(20, root_of(log.leaves[:20])))
    assert unsigned.value.status == 403
    stranger = CheckpointSigner("elsewhere/log", Ed25519PrivateKey.generate())
    with pytest.raises(WitnessRefused) as unknown:
        core.add_checkpoint(0, [], stranger.sign(1, log.leaves[0]))
    assert unknown.value.status == 404

    core.add_checkpoint(10, log.proof(10, 20), log.checkpoint(20))
    assert core.latest(ORIGIN).size == 20  # type: ignore[union-attr]


def test_the_witness_remembers_across_restarts(tmp_path: Path, core: WitnessCore, log: Log) -> None:
    core.add_checkpoint(0, [], log.checkpoint(5))
    again = WitnessCore(core.directory, core.name, [log.signer.vkey])
    assert again.latest(ORIGIN).size == 5  # type: ignore[union-attr]
    assert again.verifier_key() == core.verifier_key()


@pytest.fixture
def http_witness(core: WitnessCore) -> Iterator[Witness]:
    server = serve_witness(core, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield HttpWitness(f"http://{host}:{port}", core.verifier_key())
    server.shutdown()
    server.server_close()


def test_the_http_witness_speaks_the_protocol(http_witness: Witness, log: Log) -> None:
    lines = http_witness.add_checkpoint(0, [], log.checkpoint(12))
    assert verify_cosignature(log.checkpoint(12) + "".join(lines), http_witness.verifier_key())
    with pytest.raises(WitnessRefused) as stale:
        http_witness.add_checkpoint(0, [], log.checkpoint(13))
    assert stale.value.status == 409 and stale.value.known_size == 12
    with pytest.raises(WitnessRefused) as bad:
        http_witness.add_checkpoint(12, [leaf_hash(b"x")], log.checkpoint(13))
    assert bad.value.status == 422
    seen = http_witness.latest(ORIGIN)
    assert seen is not None and seen.size == 12


def test_add_checkpoint_bodies_parse_strictly() -> None:
    assert parse_add_checkpoint("old 3\nAAAA\n\nnote\n") == (3, [b"\x00\x00\x00"], "note\n")
    for body in ["old x\n\nnote", "new 3\n\nnote", "old 3\n!!\n\nnote", "old 3"]:
        with pytest.raises(WitnessRefused):
            parse_add_checkpoint(body)


def test_a_directory_witness_is_a_witness(core: WitnessCore, log: Log) -> None:
    witness: Witness = DirectoryWitness(core)
    assert witness.add_checkpoint(0, [], log.checkpoint(3))


def test_the_schedule_signs_while_the_ledger_grows(tmp_path: Path) -> None:
    from sqlalchemy import MetaData

    from carevault.db import make_engine, write_transaction
    from carevault.ledger.checkpoints import Checkpoints, CheckpointSchedule
    from carevault.ledger.store import LedgerEntry, LedgerStore
    from carevault.ledger.tables import ledger_tables

    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    metadata = MetaData()
    store = LedgerStore(engine, ledger_tables(metadata, "s"), "audit")
    metadata.create_all(engine)
    with write_transaction(engine) as connection:
        store.append(connection, [LedgerEntry(1, b"{}")])
    checkpoints = Checkpoints(store, Log().signer, [], lambda: 1)
    schedule = CheckpointSchedule([checkpoints], 0.05)
    schedule.start()
    try:
        import time

        deadline = time.monotonic() + 5
        while checkpoints.latest() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        schedule.stop()
    latest = checkpoints.latest()
    assert latest is not None and latest.size == 1 and latest.reason == "schedule"
    assert len(checkpoints.all()) == 1  # nothing new to sign: no second checkpoint
    engine.dispose()
