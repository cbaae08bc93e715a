"""Integrator round 66: a hospital group's SOC checks the ledger from outside, with its
own code written from RFC 9162 and C2SP (nothing of CareVault's verifier is imported).

An incident's scope document cites, for each line, the size of a signed checkpoint whose
tree holds its ledger positions (``incident.checkpoints``). The SOC keeps that checkpoint
with the document and must be able to prove each position against it, however far the
ledger has grown since."""

from __future__ import annotations

import base64
import hashlib

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from tests.integration.ledger.conftest import StaffToken, bearer, patient
from tests.support.client import FhirTestClient

_DASH = "\u2014 "


def _leaf(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _root_from_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.3.2, step by step."""
    assert 0 <= index < size
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        assert sn != 0, "proof longer than the tree"
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    assert sn == 0, "proof shorter than the tree"
    return r


def _checkpoint(note: str) -> tuple[str, int, bytes]:
    """C2SP tlog-checkpoint inside a signed note: origin, size, root (signatures are
    checked elsewhere in the suite; here what matters is the size and root)."""
    body, blank, signatures = note.partition("\n\n")
    assert blank and signatures.startswith(_DASH)
    origin, size, root = body.split("\n")[:3]
    return origin, int(size), base64.b64decode(root)


def test_an_entry_is_proven_against_an_earlier_signed_checkpoint_a_scope_cited(
    services: Services, web: FhirTestClient, staff_token: StaffToken
) -> None:
    desk, officer = staff_token(Role.FRONT_DESK), staff_token(Role.PRIVACY_OFFICER)
    someone = patient(web, desk, "Leung")
    assert web.get(f"/fhir/Patient/{someone}", headers=bearer(desk)).status_code == 200
    kept = services.audit_ledger.checkpoints.make("incident scope")  # what a scope cites
    seq = kept.size - 1

    # The ledger grows and is signed again before the SOC checks the line.
    for _ in range(3):
        assert web.get(f"/fhir/Patient/{someone}", headers=bearer(desk)).status_code == 200
    services.audit_ledger.checkpoints.make("schedule")

    answer = web.get(
        f"/audit/proof/inclusion?seq={seq}&tree_size={kept.size}", headers=bearer(officer)
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["tree_size"] == kept.size
    origin, size, root = _checkpoint(body["checkpoint"])
    assert (origin, size, root) == (_checkpoint(kept.note)[0], kept.size, kept.root)
    entry = base64.b64decode(body["entry"])
    proof = [base64.b64decode(item) for item in body["proof"]]
    assert _root_from_inclusion(_leaf(entry), seq, size, proof) == root

    # Without tree_size the answer is as before: the proof at the latest checkpoint.
    latest = web.get(f"/audit/proof/inclusion?seq={seq}", headers=bearer(officer)).json()
    assert latest["tree_size"] > kept.size
    _, size, root = _checkpoint(latest["checkpoint"])
    proof = [base64.b64decode(item) for item in latest["proof"]]
    assert _root_from_inclusion(_leaf(entry), seq, size, proof) == root


def test_a_proof_is_refused_at_a_size_no_checkpoint_was_signed_at(
    services: Services, web: FhirTestClient, staff_token: StaffToken
) -> None:
    desk, officer = staff_token(Role.FRONT_DESK), staff_token(Role.PRIVACY_OFFICER)
    someone = patient(web, desk, "Ho")
    kept = services.audit_ledger.checkpoints.make("schedule")
    assert web.get(f"/fhir/Patient/{someone}", headers=bearer(desk)).status_code == 200
    unsigned = services.audit_ledger.store.head()[0]
    assert unsigned > kept.size
    refusals = []
    for tree_size, seq in ((unsigned, 0), (unsigned + 1000, 0), (kept.size - 1, 0)):
        answer = web.get(
            f"/audit/proof/inclusion?seq={seq}&tree_size={tree_size}", headers=bearer(officer)
        )
        # A size no checkpoint vouches for is refused alike whether the live tree has
        # reached it or not: the refusal tells nothing of the unsigned head.
        assert answer.status_code == 404, answer.text
        refusals.append(answer.text.replace(str(tree_size), "N"))
    assert len(set(refusals)) == 1
    past = web.get(
        f"/audit/proof/inclusion?seq={kept.size}&tree_size={kept.size}", headers=bearer(officer)
    )
    assert past.status_code == 404, past.text
