"""CareVault evidence verifier: checks audit-ledger proofs offline, trusting nothing else.

This module stands alone (Python standard library and ``cryptography`` only) so that
a regulator or forensic firm can copy it and check CareVault's evidence without
running, importing or trusting CareVault:

* Merkle tree hashing as RFC 6962 / RFC 9162 §2.1.1 defines it;
* inclusion proofs verified exactly as RFC 9162 §2.1.3.2 says;
* consistency proofs verified exactly as RFC 9162 §2.1.4.2 says;
* checkpoints in the C2SP tlog-checkpoint format, inside C2SP signed notes with
  Ed25519 signatures, and witness cosignatures (C2SP tlog-cosignature, cosignature/v1).

Command line::

    python verifier.py inclusion --vkey KEY --checkpoint cp.txt --index N \\
        --entry entry.json --proof proof.txt
    python verifier.py consistency --vkey KEY --old old.txt --new new.txt --proof proof.txt
    python verifier.py scope --vkey KEY --checkpoint cp.txt --index N \\
        --entry entry.json --proof proof.txt --document scope.json

``scope`` checks an incident's scope document against the ledger entry that recorded
its run (``incident:scope:computed``, at position N): the entry is in the signed tree
and holds the SHA-256 of the document's canonical JSON, so a line dropped, added or
altered is refused, which checking each line's entries alone cannot show.

A proof file holds one base64 hash per line. Exit status 0 means verified.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
ED25519_TYPE = 0x01
COSIGNATURE_TYPE = 0x04
_DASH = "\u2014 "


class VerificationError(Exception):
    """The evidence does not verify; the message says which check failed."""


# --- RFC 6962 / 9162 hashing --------------------------------------------------------------


def leaf_hash(entry: bytes) -> bytes:
    """The hash of a leaf: SHA-256(0x00 || entry)."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_of(leaves: Sequence[bytes]) -> bytes:
    """MTH over already-hashed leaves, by the RFC's definition (for small inputs and tests)."""
    count = len(leaves)
    if count == 0:
        return EMPTY_ROOT
    if count == 1:
        return leaves[0]
    split = 1 << ((count - 1).bit_length() - 1)
    return node_hash(root_of(leaves[:split]), root_of(leaves[split:]))


def verify_inclusion(
    leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 §2.1.3.2: raise VerificationError unless ``leaf`` is at ``index`` of
    the tree of ``tree_size`` whose root is ``root``."""
    if index < 0 or index >= tree_size:
        raise VerificationError(f"leaf index {index} is outside a tree of size {tree_size}")
    _check_hashes([leaf, root, *proof])
    fn, sn = index, tree_size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            raise VerificationError("the inclusion proof is longer than the tree allows")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("the inclusion proof is shorter than the tree requires")
    if r != root:
        raise VerificationError("the inclusion proof does not lead to the checkpoint's root")


def verify_consistency(
    first_size: int,
    second_size: int,
    proof: Sequence[bytes],
    first_root: bytes,
    second_root: bytes,
) -> None:
    """RFC 9162 §2.1.4.2: raise VerificationError unless the tree of ``second_size``
    with ``second_root`` extends the tree of ``first_size`` with ``first_root``."""
    _check_hashes([first_root, second_root, *proof])
    if first_size < 0 or first_size > second_size:
        raise VerificationError(f"a tree of size {first_size} cannot precede one of {second_size}")
    if first_size == second_size:
        if proof:
            raise VerificationError("a proof between equal sizes must be empty")
        if first_root != second_root:
            raise VerificationError(f"two different roots for the same size {first_size}")
        return
    if first_size == 0:
        if proof:
            raise VerificationError("a proof from the empty tree must be empty")
        return
    if not proof:
        raise VerificationError("the consistency proof is empty")
    path = list(proof)
    if first_size & (first_size - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first_size - 1, second_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("the consistency proof is longer than the trees allow")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("the consistency proof is shorter than the trees require")
    if fr != first_root:
        raise VerificationError("the consistency proof does not lead to the older root")
    if sr != second_root:
        raise VerificationError("the consistency proof does not lead to the newer root")


def _check_hashes(hashes: Sequence[bytes]) -> None:
    for value in hashes:
        if len(value) != HASH_SIZE:
            raise VerificationError(f"a hash of {len(value)} bytes where 32 are required")


# --- C2SP checkpoints and signed notes ----------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        return "".join(f"{line}\n" for line in [*lines, *self.extensions])


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True)
class SignedNote:
    text: str
    signatures: tuple[NoteSignature, ...]

    def render(self) -> str:
        lines = [
            f"{_DASH}{sig.name} {base64.b64encode(sig.key_id + sig.signature).decode()}\n"
            for sig in self.signatures
        ]
        return self.text + "\n" + "".join(lines)


@dataclass(frozen=True)
class VerifierKey:
    """A C2SP note verifier key: ``name+hexkeyid+base64(type || public key)``."""

    name: str
    key_id: bytes
    kind: int
    public: bytes

    @classmethod
    def parse(cls, vkey: str) -> VerifierKey:
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise VerificationError("a verifier key has the form name+keyid+key")
        name, hex_id, encoded = parts
        try:
            key_id = bytes.fromhex(hex_id)
            raw = base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error) as error:
            raise VerificationError("the verifier key is not well formed") from error
        if len(key_id) != 4 or len(raw) != 33 or raw[0] not in (ED25519_TYPE, COSIGNATURE_TYPE):
            raise VerificationError("the verifier key is not an Ed25519 note key")
        key = cls(name, key_id, raw[0], raw[1:])
        if key_id != key_hash(name, raw[0], raw[1:]):
            raise VerificationError("the verifier key's id does not match its key")
        return key

    def render(self) -> str:
        encoded = base64.b64encode(bytes([self.kind]) + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def verify(self, message: bytes, signature: bytes) -> None:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except (InvalidSignature, ValueError) as error:
            raise VerificationError(f"the signature by {self.name} does not verify") from error


def key_hash(name: str, kind: int, public: bytes) -> bytes:
    """The 4-byte key id: SHA-256(name || 0x0A || type || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([kind]) + public).digest()[:4]


def parse_note(text: str) -> SignedNote:
    if not text.endswith("\n"):
        raise VerificationError("a signed note ends with a newline")
    if text.endswith("\n\n") and _DASH in text:
        # Not a signed note (C2SP: its last line is a signature), and the usual way to
        # make one: a note taken out of JSON with ``jq -r``, which adds a newline.
        raise VerificationError(
            "the note ends with a blank line after its signatures: keep it byte for byte "
            "as served (jq -j, not jq -r)"
        )
    split = text.rfind("\n\n")
    if split < 0:
        raise VerificationError("a signed note has a blank line before its signatures")
    body, tail = text[: split + 1], text[split + 2 :]
    signatures: list[NoteSignature] = []
    for line in tail.splitlines():
        if not line.startswith(_DASH):
            raise VerificationError("a signature line starts with an em dash")
        name, _, encoded = line[len(_DASH) :].rpartition(" ")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error) as error:
            raise VerificationError("a signature is not base64") from error
        if not name or len(raw) < 5:
            raise VerificationError("a signature line is malformed")
        signatures.append(NoteSignature(name, raw[:4], raw[4:]))
    if not signatures:
        raise VerificationError("the note carries no signature")
    return SignedNote(body, tuple(signatures))


def parse_checkpoint(body: str) -> Checkpoint:
    lines = body.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise VerificationError("a checkpoint has an origin, a size and a root, each a line")
    origin, size_text, root_text, *extensions = lines[:-1]
    if not size_text.isdigit() or (size_text.startswith("0") and size_text != "0"):
        raise VerificationError("the checkpoint's size is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except (ValueError, binascii.Error) as error:
        raise VerificationError("the checkpoint's root is not base64") from error
    if not origin or len(root) != HASH_SIZE:
        raise VerificationError("the checkpoint's origin or root is malformed")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


def open_checkpoint(text: str, key: VerifierKey) -> Checkpoint:
    """Parse a signed checkpoint and verify the log's signature on it."""
    note = parse_note(text)
    checkpoint = parse_checkpoint(note.text)
    if checkpoint.origin != key.name:
        raise VerificationError(f"the checkpoint is from {checkpoint.origin!r}, not {key.name!r}")
    for signature in note.signatures:
        if signature.name == key.name and signature.key_id == key.key_id:
            key.verify(note.text.encode(), signature.signature)
            return checkpoint
    raise VerificationError(f"the checkpoint carries no signature by {key.name}")


def cosignature_message(body: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


def verify_cosignature(text: str, witness: VerifierKey) -> int:
    """Verify a witness's cosignature/v1 on a signed checkpoint; return its timestamp."""
    if witness.kind != COSIGNATURE_TYPE:
        raise VerificationError("a witness key has type 0x04 (cosignature/v1)")
    note = parse_note(text)
    for signature in note.signatures:
        if signature.name == witness.name and signature.key_id == witness.key_id:
            if len(signature.signature) != 8 + 64:
                raise VerificationError("a cosignature is a timestamp and a signature")
            (timestamp,) = struct.unpack(">Q", signature.signature[:8])
            witness.verify(cosignature_message(note.text, timestamp), signature.signature[8:])
            return int(timestamp)
    raise VerificationError(f"the checkpoint carries no cosignature by {witness.name}")


# --- incident scope documents ------------------------------------------------------------

SCOPE_TAG = "incident:scope:computed"


def canonical_json(document: object) -> bytes:
    """The canonical JSON CareVault digests: keys sorted, no spaces, UTF-8."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def verify_scope(document_text: bytes, entry: bytes) -> tuple[int, int]:
    """Raise VerificationError unless ``entry`` (already proved included) records the run
    whose document is ``document_text``; return the incident's id and the run's number."""
    try:
        document = json.loads(document_text)
        incident = document["incident"]["id"]
    except (ValueError, TypeError, KeyError) as error:
        raise VerificationError("the scope document is not a scope document's JSON") from error
    try:
        recorded = json.loads(entry)
        detail = recorded["detail"]
        run, digest = detail["run"], detail["sha256"]
    except (ValueError, TypeError, KeyError) as error:
        raise VerificationError("the entry is not a scope run's ledger entry") from error
    if recorded.get("tag") != SCOPE_TAG:
        raise VerificationError(f"the entry is not a scope run's ({SCOPE_TAG}) ledger entry")
    if detail.get("incident") != incident:
        raise VerificationError(
            f"the entry records a run of incident {detail.get('incident')!r}, "
            f"not of incident {incident!r}"
        )
    if hashlib.sha256(canonical_json(document)).hexdigest() != digest:
        raise VerificationError(
            f"the scope document is not the one run {run}'s ledger entry records: "
            "it was changed (a line dropped, added, reordered or altered)"
        )
    return int(incident), int(run)


# --- command line -------------------------------------------------------------------------


def _read_proof(path: str) -> list[bytes]:
    with open(path, encoding="utf-8") as handle:
        return [base64.b64decode(line.strip(), validate=True) for line in handle if line.strip()]


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    inclusion = commands.add_parser("inclusion", help="an entry is in the checkpoint's tree")
    inclusion.add_argument("--vkey", required=True, help="the log's verifier key")
    inclusion.add_argument("--checkpoint", required=True, help="file: the signed checkpoint")
    inclusion.add_argument("--index", required=True, type=int, help="the entry's position")
    inclusion.add_argument("--entry", required=True, help="file: the entry's exact bytes")
    inclusion.add_argument("--proof", required=True, help="file: base64 hashes, one a line")
    scope = commands.add_parser("scope", help="a scope document is the one its run recorded")
    for option, text in (
        ("--vkey", "the log's verifier key"),
        ("--checkpoint", "file: a signed checkpoint holding the run's entry"),
        ("--index", "the position of the run's entry (incident runs: ledger_position)"),
        ("--entry", "file: the run's entry's exact bytes"),
        ("--proof", "file: base64 hashes, one a line"),
        ("--document", "file: the scope document (JSON)"),
    ):
        scope.add_argument(
            option, required=True, help=text, type=int if option == "--index" else str
        )
    consistency = commands.add_parser("consistency", help="a newer checkpoint extends an older")
    consistency.add_argument("--vkey", required=True)
    consistency.add_argument("--old", required=True, help="file: the older signed checkpoint")
    consistency.add_argument("--new", required=True, help="file: the newer signed checkpoint")
    consistency.add_argument("--proof", required=True)
    consistency.add_argument("--witness", action="append", default=[], help="witness vkey")
    args = parser.parse_args(argv)
    try:
        key = VerifierKey.parse(args.vkey)
        if args.command in ("inclusion", "scope"):
            checkpoint = open_checkpoint(_read(args.checkpoint), key)
            with open(args.entry, "rb") as handle:
                entry = handle.read()
            verify_inclusion(
                leaf_hash(entry),
                args.index,
                checkpoint.size,
                _read_proof(args.proof),
                checkpoint.root,
            )
            if args.command == "inclusion":
                print(f"OK: entry {args.index} is in {checkpoint.origin} at size {checkpoint.size}")
            else:
                with open(args.document, "rb") as handle:
                    incident, run = verify_scope(handle.read(), entry)
                print(
                    f"OK: the scope document is run {run} of incident {incident}, "
                    f"recorded at entry {args.index} of {checkpoint.origin}"
                )
        else:
            old_text, new_text = _read(args.old), _read(args.new)
            old, new = open_checkpoint(old_text, key), open_checkpoint(new_text, key)
            for witness in args.witness:
                verify_cosignature(new_text, VerifierKey.parse(witness))
            verify_consistency(old.size, new.size, _read_proof(args.proof), old.root, new.root)
            print(f"OK: size {new.size} extends size {old.size} of {new.origin}")
    except (VerificationError, OSError, ValueError, binascii.Error) as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
