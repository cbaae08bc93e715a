"""An incident's evidence checked as a forensic firm would: with a verifier of our own,
written here from RFC 6962 / RFC 9162 (leaf 0x00, node 0x01, MTH, the inclusion and
consistency verification algorithms of §2.1.3.2 and §2.1.4.2) and C2SP signed-note,
tlog-checkpoint and tlog-cosignature, importing nothing of CareVault's ledger code. It
asks what the scope claims: every patient listed has entries the proofs cover, saying
what the line says (who, when, which categories); no entry of a compromised principal in
the window is left out; the counts agree with the lines; one altered byte is caught."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from carevault.bootstrap import Services
from carevault.incidents import Actor, compute_scope, declare_case
from carevault.ledger.events import AuditEvent, Outcome, Tag
from tests.support.staff import add_account

pytestmark = pytest.mark.postgres

JAN_1 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
MINUTE = 60_000_000
OFFICER = Actor("staff:officer1", "10.1.2.3")


# --- RFC 6962 / 9162, from the text -----------------------------------------------------


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf(entry: bytes) -> bytes:
    return _h(b"\x00" + entry)


def node(left: bytes, right: bytes) -> bytes:
    return _h(b"\x01" + left + right)


def mth(entries: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of RFC 6962 §2.1: k the largest power of two smaller than n."""
    if not entries:
        return _h(b"")
    if len(entries) == 1:
        return leaf(entries[0])
    k = 1
    while k * 2 < len(entries):
        k *= 2
    return node(mth(entries[:k]), mth(entries[k:]))


def inclusion_ok(index: int, size: int, leaf_hash: bytes, path: Sequence[bytes],
                 root: bytes) -> bool:  # fmt: skip
    """RFC 9162 §2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def consistency_ok(first: int, second: int, path: Sequence[bytes], first_root: bytes,
                   second_root: bytes) -> bool:  # fmt: skip
    """RFC 9162 §2.1.4.2."""
    if first == second:
        return not path and first_root == second_root
    if first == 0 or first > second or not path:
        return False
    if first & (first - 1) == 0:
        path = [first_root, *path]
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_root and sr == second_root and sn == 0


# --- C2SP signed-note, tlog-checkpoint, tlog-cosignature --------------------------------


def key_id(name: str, kind: int, public: bytes) -> bytes:
    return _h(name.encode() + b"\n" + bytes([kind]) + public)[:4]


def parse_vkey(vkey: str) -> tuple[str, bytes, int, bytes]:
    name, hex_id, encoded = vkey.split("+", 2)  # base64 may hold "+"
    raw = base64.b64decode(encoded, validate=True)
    assert len(raw) == 33 and key_id(name, raw[0], raw[1:]) == bytes.fromhex(hex_id)
    return name, bytes.fromhex(hex_id), raw[0], raw[1:]


def open_note(note: str, vkey: str) -> tuple[str, int, bytes, list[tuple[str, bytes]]]:
    """(origin, size, root, signature lines) of a checkpoint signed by ``vkey``."""
    name, kid, kind, public = parse_vkey(vkey)
    assert kind == 0x01
    assert note.endswith("\n")
    text, _, signatures = note.partition("\n\n")
    text += "\n"
    assert all(ord(c) >= 0x20 or c == "\n" for c in note)
    lines = []
    for line in signatures.splitlines():
        assert line.startswith("\u2014 ")
        signer, _, encoded = line[2:].rpartition(" ")
        lines.append((signer, base64.b64decode(encoded, validate=True)))
    origin, size, root = text.split("\n")[:3]
    signed = [raw for signer, raw in lines if signer == name and raw[:4] == kid]
    assert len(signed) == 1, "exactly one signature by the log's key"
    Ed25519PublicKey.from_public_bytes(public).verify(signed[0][4:], text.encode())
    assert origin == name
    assert size.isdigit() and (size == "0" or not size.startswith("0"))
    return origin, int(size), base64.b64decode(root, validate=True), lines


def cosigned_at(note: str, witness_vkey: str) -> int:
    name, kid, kind, public = parse_vkey(witness_vkey)
    assert kind == 0x04
    text = note.partition("\n\n")[0] + "\n"
    for signer, raw in open_note(note, _log_key_of(note))[3]:
        if signer == name and raw[:4] == kid:
            (timestamp,) = struct.unpack(">Q", raw[4:12])
            message = f"cosignature/v1\ntime {timestamp}\n{text}".encode()
            Ed25519PublicKey.from_public_bytes(public).verify(raw[12:], message)
            return int(timestamp)
    raise AssertionError("no cosignature by the witness")


_KEYS: dict[str, str] = {}


def _log_key_of(note: str) -> str:
    return _KEYS[note.split("\n", 1)[0]]


def _at(text: str) -> int:
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None, f"{text!r} has no zone"
    return int(moment.astimezone(UTC).timestamp() * 1_000_000)


# --- the case ----------------------------------------------------------------------------


def _events() -> list[AuditEvent]:
    def read(minute: int, who: str, patient: str, categories: tuple[str, ...],
             outcome: Outcome = Outcome.SUCCESS) -> AuditEvent:  # fmt: skip
        return AuditEvent(
            tag=Tag.FHIR_READ, outcome=outcome, at_us=JAN_1 + minute * MINUTE,
            principal=who, resource_type="Patient", resource_id=patient,
            patient_pseudonym=patient, categories=categories,
        )  # fmt: skip

    return [
        read(-90, "staff:thief", "p-before", ("identity",)),  # before the window
        read(1, "staff:thief", "p-a", ("identity",)),
        read(2, "staff:nurse", "p-b", ("clinical",)),  # not compromised
        read(3, "staff:thief", "p-a", ("clinical",)),
        read(4, "staff:thief", "p-c", ("contact", "identity")),
        read(5, "staff:thief", "p-d", ("identity",), Outcome.DENIED),  # nothing released
        read(6, "staff:thief", "p-e", ("medication",)),
        read(7, "staff:thief", "p-a", ("identity",)),
        read(60 * 30, "staff:thief", "p-after", ("identity",)),  # after the window
    ]


def test_the_scope_is_proved_by_its_evidence_with_an_independent_verifier(
    services: Services,
) -> None:
    add_account(services, "thief")
    services.audit.record(_events())
    case = {"title": "Phished", "accounts": ["thief"], "since": "2026-01-01T00:00:00Z",
            "until": "2026-01-01T12:00:00Z"}  # fmt: skip
    incident = declare_case(services, OFFICER, case).incident_id
    run = compute_scope(services, incident, actor=OFFICER)
    document: dict[str, Any] = json.loads(json.dumps(run.document))
    vkeys = {"audit": services.audit_ledger.checkpoints.signer.vkey.render()}
    _KEYS.update({parse_vkey(v)[0]: v for v in vkeys.values()})
    store = services.audit_ledger.store

    # The signed checkpoint the document carries, and the tree it commits to, recomputed
    # from every entry.
    checkpoint = document["incident"]["checkpoints"]["audit"]
    _, size, root, _ = open_note(checkpoint["note"], vkeys["audit"])
    assert size == checkpoint["size"] and root.hex() == checkpoint["root"]
    entries = [data for _, data in store.entries()][:size]
    assert len(entries) == size and mth(entries) == root

    # What the ledger itself says the compromised principal was given in the window.
    since, until = _at(document["incident"]["since"]), _at(document["incident"]["until"])
    released: dict[str, list[int]] = {}
    for seq, data in enumerate(entries):
        event = json.loads(data)
        thiefs = event.get("principal") == "staff:thief" and event.get("outcome") == "success"
        if thiefs and event.get("patient_pseudonym") and since <= event["at_us"] < until:
            released.setdefault(event["patient_pseudonym"], []).append(seq)
    assert set(released) == {"p-a", "p-c", "p-e"}

    confirmed = document["tiers"]["confirmed"]
    assert {line["pseudonym"] for line in confirmed} == set(released)
    for line in confirmed:
        assert sorted(line["evidence"]) == released[line["pseudonym"]], line["patient"]
        assert line["ledger"] == "audit" and line["checkpoint"] == size
        seen: set[str] = set()
        times = []
        for seq in line["evidence"]:
            data = store.entry(seq)
            assert data is not None
            path = store.inclusion_proof(seq, size)
            assert inclusion_ok(seq, size, leaf(data), path, root)
            event = json.loads(data)
            assert event["patient_pseudonym"] == line["pseudonym"]
            seen.update(event["categories"])
            times.append(event["at_us"])
        assert sorted(seen) == sorted(line["categories"])
        assert (_at(line["first"]), _at(line["last"])) == (min(times), max(times))

    # The counts say what the lines say.
    counts = document["counts"]
    people = {line["person"] for line in confirmed}
    assert counts["people"]["confirmed"] == len(people) == 3
    assert counts["people"]["total"] == sum(v for k, v in counts["people"].items() if k != "total")
    for category, number in counts["by_category"]["confirmed"].items():
        assert number == len({ln["person"] for ln in confirmed if category in ln["categories"]})
    assert set(counts["by_category"]["confirmed"]) == {c for ln in confirmed
                                                        for c in ln["categories"]}  # fmt: skip
    assert sum(counts["by_day"]["confirmed"].values()) == len(people)

    # One altered byte, an entry moved, a proof for another size: each is caught.
    seq = confirmed[0]["evidence"][0]
    genuine = store.entry(seq)
    assert genuine is not None
    path = store.inclusion_proof(seq, size)
    flipped = bytearray(genuine)
    flipped[genuine.index(b"categories") + 14] ^= 0x01
    assert not inclusion_ok(seq, size, leaf(bytes(flipped)), path, root)
    other = confirmed[1]["evidence"][0]
    assert not inclusion_ok(other, size, leaf(genuine), path, root)
    assert not inclusion_ok(seq, size, leaf(genuine), store.inclusion_proof(seq, size - 1), root)
    assert not inclusion_ok(seq, size, _h(genuine), path, root)  # no 0x00: not a leaf hash

    # The ledger only grew since: a later checkpoint, cosigned by the witness, and a
    # consistency proof from the scope's.
    later = services.audit_ledger.checkpoints.make("forensic check")
    _, later_size, later_root, _ = open_note(later.note, vkeys["audit"])
    assert later_size > size
    proof = store.consistency_proof(size, later_size)
    assert consistency_ok(size, later_size, proof, root, later_root)
    assert not consistency_ok(size, later_size, proof, root, _h(b"forged"))
    witness = services.audit_ledger.checkpoints.witnesses[0].verifier_key().render()
    assert cosigned_at(later.note, witness) > 0
    assert cosigned_at(checkpoint["note"], witness) > 0  # the scope's own, witnessed too

    # The document is the run the ledger recorded: its canonical JSON's SHA-256 is in the
    # run's entry, which the later checkpoint holds.
    assert run.ledger_seq is not None and run.ledger_seq < later_size
    data = store.entry(run.ledger_seq)
    assert data is not None
    assert inclusion_ok(run.ledger_seq, later_size, leaf(data),
                        store.inclusion_proof(run.ledger_seq, later_size), later_root)  # fmt: skip
    recorded = json.loads(data)
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert recorded["tag"] == "incident:scope:computed"
    assert recorded["detail"]["incident"] == incident
    assert recorded["detail"]["sha256"] == hashlib.sha256(canonical.encode()).hexdigest()
    confirmed.pop()
    altered = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert recorded["detail"]["sha256"] != hashlib.sha256(altered.encode()).hexdigest()
    with pytest.raises(InvalidSignature):
        body = checkpoint["note"].replace(f"\n{size}\n", f"\n{size + 1}\n", 1)
        open_note(body, vkeys["audit"])
