"""An incident's evidence checked offline with the one-file verifier, copied out of the
project: every confirmed line's ledger entries against the scope's signed checkpoint,
and the scope document itself against the ledger entry that records its run. Each kind
of tampering is refused with a message that says which check failed."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.db import write_transaction
from carevault.incidents import Actor, compute_scope, declare_case
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.store import LedgerEntry
from tests.integration.ledger.test_http import standalone
from tests.support.staff import add_account

pytestmark = pytest.mark.postgres

JAN_1 = 1_767_225_600_000_000
OFFICER = Actor("staff:officer1", "10.1.2.3")


class Bundle:
    """What an officer hands a forensic firm, as files in ``directory``."""

    def __init__(self, services: Services, directory: Path) -> None:
        self.services = services
        self.directory = directory
        self.vkey = services.audit_ledger.checkpoints.signer.vkey.render()
        add_account(services, "thief")
        services.audit.record(
            [
                AuditEvent(
                    tag=Tag.FHIR_READ,
                    outcome=Outcome.SUCCESS,
                    at_us=JAN_1 + n * 60_000_000,
                    principal="staff:thief" if n % 2 == 0 else "staff:nurse",
                    resource_type="Patient",
                    resource_id=f"p{n}",
                    patient_pseudonym=f"ps{n}",
                    categories=("identity",),
                )
                for n in range(6)
            ]
        )
        case = {"title": "Phished", "accounts": ["thief"], "since": "2026-01-01",
                "until": "2026-01-02T00:00:00+00:00"}  # fmt: skip
        incident = declare_case(services, OFFICER, case).incident_id
        self.run = compute_scope(services, incident, actor=OFFICER)
        assert self.run.document is not None
        self.document: dict[str, Any] = self.run.document
        checkpoint = self.document["incident"]["checkpoints"]["audit"]
        self.size = int(checkpoint["size"])
        self.write("checkpoint.txt", checkpoint["note"])

    def write(self, name: str, content: str | bytes) -> str:
        path = self.directory / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return name

    def evidence(self) -> list[int]:
        return [seq for line in self.document["tiers"]["confirmed"] for seq in line["evidence"]]

    def entry(self, seq: int, data: bytes | None = None, proof: list[bytes] | None = None,
              size: int | None = None) -> list[str]:  # fmt: skip
        store = self.services.audit_ledger.store
        found = store.entry(seq) if data is None else data
        assert found is not None
        hashes = store.inclusion_proof(seq, size or self.size) if proof is None else proof
        lines = "".join(base64.b64encode(item).decode() + "\n" for item in hashes)
        return ["--entry", self.write(f"entry-{seq}.json", found),
                "--proof", self.write(f"proof-{seq}.txt", lines)]  # fmt: skip

    def inclusion(self, index: int, files: list[str], checkpoint: str = "checkpoint.txt",
                  vkey: str | None = None) -> tuple[int, str]:  # fmt: skip
        done = standalone(self.directory, "inclusion", "--vkey", vkey or self.vkey,
                          "--checkpoint", checkpoint, "--index", str(index), *files)  # fmt: skip
        return done.returncode, done.stdout + done.stderr

    def scope(self, document: dict[str, Any] | str) -> tuple[int, str]:
        """The scope command: the run's ledger entry included in a checkpoint that holds
        it, and the document's canonical digest the one that entry records."""
        seq = self.run.ledger_seq
        assert seq is not None
        made = self.services.audit_ledger.checkpoints.make("evidence")
        text = document if isinstance(document, str) else json.dumps(document, indent=2)
        done = standalone(
            self.directory, "scope", "--vkey", self.vkey,
            "--checkpoint", self.write("run-checkpoint.txt", made.note),
            "--index", str(seq), *self.entry(seq, size=made.size),
            "--document", self.write("scope.json", text),
        )  # fmt: skip
        return done.returncode, done.stdout + done.stderr


@pytest.fixture
def bundle(services: Services, tmp_path: Path) -> Bundle:
    return Bundle(services, tmp_path)


def test_every_confirmed_line_verifies_offline_and_tampering_is_named(bundle: Bundle) -> None:
    evidence = bundle.evidence()
    assert evidence == [0, 2, 4]
    for seq in evidence:
        assert bundle.inclusion(seq, bundle.entry(seq)) == (
            0,
            f"OK: entry {seq} is in carevault.local/audit at size {bundle.size}\n",
        )
    store = bundle.services.audit_ledger.store
    genuine = store.entry(2)
    assert genuine is not None
    flipped = bytearray(genuine)
    flipped[12] ^= 1
    not_root = "FAILED: the inclusion proof does not lead to the checkpoint's root"
    assert bundle.inclusion(2, bundle.entry(2, bytes(flipped)))[1].strip() == not_root
    # Reordered: another entry at this position, or this entry claimed at another.
    assert bundle.inclusion(2, bundle.entry(2, store.entry(4)))[1].strip() == not_root
    assert bundle.inclusion(4, bundle.entry(2))[1].strip() == not_root
    # A proof for another tree size.
    assert bundle.inclusion(2, bundle.entry(2, size=bundle.size - 1))[1].strip() == not_root
    # Another checkpoint's signature under this checkpoint's body.
    body = (bundle.directory / "checkpoint.txt").read_text().split("\n\n")[0]
    other = bundle.services.audit_ledger.checkpoints.make("another")
    swapped = bundle.write("swapped.txt", body + "\n\n" + other.note.split("\n\n")[1])
    code, said = bundle.inclusion(2, bundle.entry(2), swapped)
    assert code == 1 and "signature by carevault.local/audit does not verify" in said


def test_another_ledgers_entry_and_checkpoint_are_refused(bundle: Bundle) -> None:
    """The unwrap ledger signs with the same key under another origin: its entry, proof
    and checkpoint spliced into the audit evidence are refused either way."""
    unwrap = bundle.services.unwrap_ledger
    with write_transaction(bundle.services.key_engine) as connection:
        unwrap.store.append(connection, [LedgerEntry(JAN_1, b'{"n":0}', None, "system:x")])
    made = unwrap.checkpoints.make("spliced")
    files = bundle.entry(0, b'{"n":0}', unwrap.store.inclusion_proof(0, made.size))
    assert bundle.inclusion(0, files)[0] == 1
    code, said = bundle.inclusion(0, files, bundle.write("unwrap.txt", made.note))
    assert code == 1 and "is from 'carevault.local/unwrap', not 'carevault.local/audit'" in said


def test_the_scope_document_verifies_against_the_entry_that_records_its_run(
    bundle: Bundle,
) -> None:
    """Each line verifying proves what is there, not that nothing was dropped: the run's
    ledger entry holds the document's digest, and the verifier checks the document
    against it, so a line dropped, added or altered is refused."""
    code, said = bundle.scope(bundle.document)
    assert code == 0, said
    assert said.strip() == (
        f"OK: the scope document is run 1 of incident {bundle.document['incident']['id']}, "
        f"recorded at entry {bundle.run.ledger_seq} of carevault.local/audit"
    )
    dropped = json.loads(json.dumps(bundle.document))
    dropped["tiers"]["confirmed"].pop()
    code, said = bundle.scope(dropped)
    assert code == 1
    assert "FAILED: the scope document is not the one run 1's ledger entry records" in said
    reordered = json.loads(json.dumps(bundle.document))
    reordered["tiers"]["confirmed"].reverse()
    assert bundle.scope(reordered)[0] == 1
    assert bundle.scope("not json")[1].strip().startswith("FAILED: the scope document")
