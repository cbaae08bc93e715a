"""The standalone verifier's command line, in process: what a regulator runs on the
files CareVault exports (a checkpoint, an entry, a proof), and how it says no.

tests/integration/ledger/test_http.py runs the same module copied out of the project;
here each answer and refusal is checked one by one."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from carevault.ledger import tree
from carevault.ledger.checkpoints import CheckpointSigner
from carevault.ledger.verifier import VerificationError, leaf_hash, main, root_of, verify_scope
from carevault.ledger.witness import WitnessCore

ORIGIN = "clinic.example/audit"
ENTRIES = [f'{{"n":{i}}}'.encode() for i in range(300)]
LEAVES = [leaf_hash(entry) for entry in ENTRIES]


def read(wanted: list[tuple[int, int]]) -> list[bytes]:
    return [root_of(LEAVES[i << level : (i + 1) << level]) for level, i in wanted]


class Evidence:
    """What an export hands a forensic firm, as files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.signer = CheckpointSigner(ORIGIN, Ed25519PrivateKey.generate())
        self.witness = WitnessCore(directory / "witness", "witness.example/w1", [self.signer.vkey])
        self.vkey = self.signer.vkey.render()
        self.old = self.write("old.txt", self.checkpoint(100, 0))
        self.new = self.write("new.txt", self.checkpoint(300, 100))

    def checkpoint(self, size: int, seen: int) -> str:
        note = self.signer.sign(size, root_of(LEAVES[:size]))
        proof = tree.consistency_proof(seen, size, read) if seen else []
        return note + "".join(self.witness.add_checkpoint(seen, proof, note))

    def write(self, name: str, text: str | bytes) -> str:
        path = self.directory / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        return str(path)

    def proof_file(self, hashes: list[bytes]) -> str:
        return self.write("proof.txt", "".join(base64.b64encode(h).decode() + "\n" for h in hashes))

    def inclusion(self, index: int, entry: bytes | None = None) -> list[str]:
        proof = self.proof_file(tree.inclusion_proof(index, 300, read))
        entry_file = self.write("entry.json", ENTRIES[index] if entry is None else entry)
        return [
            "inclusion",
            f"--vkey={self.vkey}",
            f"--checkpoint={self.new}",
            f"--index={index}",
            f"--entry={entry_file}",
            f"--proof={proof}",
        ]

    def consistency(self, *extra: str) -> list[str]:
        proof = self.proof_file(tree.consistency_proof(100, 300, read))
        return [
            "consistency",
            f"--vkey={self.vkey}",
            f"--old={self.old}",
            f"--new={self.new}",
            f"--proof={proof}",
            *extra,
        ]


@pytest.fixture
def evidence(tmp_path: Path) -> Evidence:
    return Evidence(tmp_path)


@pytest.mark.parametrize("index", [0, 99, 255, 256, 299])
def test_an_exported_entry_is_shown_to_be_in_the_signed_tree(
    evidence: Evidence, index: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(evidence.inclusion(index)) == 0
    assert capsys.readouterr().out == f"OK: entry {index} is in {ORIGIN} at size 300\n"


def test_a_newer_checkpoint_is_shown_to_extend_the_older_and_to_be_witnessed(
    evidence: Evidence, capsys: pytest.CaptureFixture[str]
) -> None:
    witness = evidence.witness.verifier_key().render()

    assert main(evidence.consistency(f"--witness={witness}")) == 0
    assert capsys.readouterr().out == f"OK: size 300 extends size 100 of {ORIGIN}\n"


def _refused(arguments: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(arguments) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("FAILED: ")
    return captured.err


def test_an_altered_entry_is_refused(
    evidence: Evidence, capsys: pytest.CaptureFixture[str]
) -> None:
    _refused(evidence.inclusion(7, entry=b'{"n":8}'), capsys)


def test_a_checkpoint_signed_by_another_key_is_refused(
    evidence: Evidence, capsys: pytest.CaptureFixture[str]
) -> None:
    forged = CheckpointSigner(ORIGIN, Ed25519PrivateKey.generate()).sign(300, root_of(LEAVES))
    evidence.new = evidence.write("new.txt", forged)
    _refused(evidence.inclusion(7), capsys)


def test_a_witness_that_never_cosigned_is_refused(
    evidence: Evidence, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stranger = WitnessCore(tmp_path / "other", "witness.example/w2", [evidence.signer.vkey])
    error = _refused(evidence.consistency(f"--witness={stranger.verifier_key().render()}"), capsys)
    assert "no cosignature by witness.example/w2" in error


def test_a_consistency_proof_for_other_sizes_is_refused(
    evidence: Evidence, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = evidence.consistency()
    evidence.proof_file(tree.consistency_proof(99, 300, read))
    _refused(arguments, capsys)


@pytest.mark.parametrize("broken", ["missing file", "not base64", "bad vkey"])
def test_unreadable_evidence_is_refused_not_a_crash(
    evidence: Evidence, broken: str, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = evidence.inclusion(3)
    if broken == "missing file":
        arguments[4] = "--entry=" + str(evidence.directory / "nowhere.json")
    elif broken == "not base64":
        evidence.write("proof.txt", "!!! not base64 !!!\n")
    else:
        arguments[1] = "--vkey=clinic.example/audit+zzzz+not-a-key"
    _refused(arguments, capsys)


@pytest.mark.parametrize(
    ("entry", "said"),
    [
        (b"not json", "not a scope run's ledger entry"),
        (b'{"tag":"fhir:resource:read","detail":{"run":1,"sha256":"x"}}', "not a scope run's"),
        (
            b'{"tag":"incident:scope:computed","detail":{"incident":8,"run":1,"sha256":"x"}}',
            "a run of incident 8, not of incident 7",
        ),
    ],
)
def test_a_scope_document_is_refused_against_an_entry_that_does_not_record_it(
    entry: bytes, said: str
) -> None:
    with pytest.raises(VerificationError, match=said):
        verify_scope(b'{"incident":{"id":7}}', entry)
