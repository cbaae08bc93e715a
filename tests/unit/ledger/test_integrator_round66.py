"""Integrator round 66: a SOC engineer saved a checkpoint out of the inclusion proof's
JSON with ``jq -r .checkpoint`` (which adds a newline after the last signature line) and
the standalone verifier answered "the note carries no signature", which sent them looking
for a missing signature. The note is still refused (C2SP: a signed note's last line is a
signature), in words that say what is wrong and how to keep it as served."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from carevault.ledger.checkpoints import CheckpointSigner
from carevault.ledger.verifier import leaf_hash, main, root_of

ORIGIN = "soc.example/audit"


def test_a_note_saved_with_a_trailing_newline_is_refused_saying_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = b'{"n":0}'
    signer = CheckpointSigner(ORIGIN, Ed25519PrivateKey.generate())
    note = signer.sign(1, root_of([leaf_hash(entry)]))
    (tmp_path / "entry.json").write_bytes(entry)
    (tmp_path / "proof.txt").write_text("")
    args = ["inclusion", "--vkey", signer.vkey.render(), "--index", "0"]
    files = ["--entry", str(tmp_path / "entry.json"), "--proof", str(tmp_path / "proof.txt")]

    (tmp_path / "as-served.txt").write_text(note, encoding="utf-8")
    assert main([*args, "--checkpoint", str(tmp_path / "as-served.txt"), *files]) == 0
    capsys.readouterr()

    (tmp_path / "jq-r.txt").write_text(note + "\n", encoding="utf-8")
    assert main([*args, "--checkpoint", str(tmp_path / "jq-r.txt"), *files]) == 1
    said = capsys.readouterr().err
    assert "no signature" not in said
    assert "blank line after its signatures" in said and "jq -j" in said
