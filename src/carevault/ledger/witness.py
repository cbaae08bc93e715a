"""Witnesses: parties outside the database that cosign checkpoints (C2SP tlog-witness).

A private log could show one history to one auditor and another to the next. A
witness remembers the last checkpoint it cosigned for each log and cosigns a new
one only after a consistency proof shows the new tree extends it, so a rolled-back
or forked ledger can no longer get cosigned, and ``audit verify`` compares the
ledger with what the witness saw.

``WitnessCore`` is the witness itself, keeping its state in a directory (its own
key, one state file per log, written atomically). ``DirectoryWitness`` uses it in
process (the directory should be on another host or mount); ``HttpWitness`` talks
to one over the C2SP ``add-checkpoint`` protocol, as ``carevault witness serve``
offers.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from carevault.keys.files import ed25519_key, write_private
from carevault.ledger.verifier import (
    COSIGNATURE_TYPE,
    Checkpoint,
    VerificationError,
    VerifierKey,
    cosignature_message,
    key_hash,
    open_checkpoint,
    parse_note,
    verify_consistency,
)


class WitnessRefused(Exception):
    """The witness would not cosign; ``status`` is the protocol's HTTP status."""

    def __init__(self, status: int, message: str, known_size: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.known_size = known_size


@dataclass(frozen=True)
class WitnessView:
    """The latest checkpoint a witness cosigned for a log."""

    size: int
    root: bytes
    note: str


class Witness(Protocol):
    name: str

    def add_checkpoint(self, old_size: int, proof: Sequence[bytes], note: str) -> list[str]:
        """Cosign ``note`` if it extends what the witness saw; return signature lines."""
        ...

    def latest(self, origin: str) -> WitnessView | None:
        """What the witness last cosigned for ``origin``."""
        ...

    def verifier_key(self) -> VerifierKey: ...


def witness_verifier_key(name: str, key: Ed25519PrivateKey) -> VerifierKey:
    public = key.public_key().public_bytes_raw()
    return VerifierKey(name, key_hash(name, COSIGNATURE_TYPE, public), COSIGNATURE_TYPE, public)


class WitnessCore:
    """The witness's own logic and state, in a directory it alone writes."""

    def __init__(self, directory: Path, name: str, logs: Sequence[VerifierKey]) -> None:
        self.directory = directory
        self.name = name
        self.logs = {key.name: key for key in logs}
        self.key = ed25519_key(directory / "witness.pem", create=True)
        self._lock = threading.Lock()

    def verifier_key(self) -> VerifierKey:
        return witness_verifier_key(self.name, self.key)

    def _state_path(self, origin: str) -> Path:
        safe = base64.urlsafe_b64encode(origin.encode()).decode().rstrip("=")
        return self.directory / f"log-{safe}.json"

    def latest(self, origin: str) -> WitnessView | None:
        path = self._state_path(origin)
        if not path.exists():
            return None
        state = json.loads(path.read_text())
        return WitnessView(int(state["size"]), base64.b64decode(state["root"]), state["note"])

    def add_checkpoint(self, old_size: int, proof: Sequence[bytes], note: str) -> list[str]:
        try:
            origin = parse_note(note).text.split("\n", 1)[0]
        except VerificationError as error:
            raise WitnessRefused(HTTPStatus.BAD_REQUEST, str(error)) from error
        key = self.logs.get(origin)
        if key is None:
            raise WitnessRefused(HTTPStatus.NOT_FOUND, f"unknown log {origin!r}")
        try:
            checkpoint = open_checkpoint(note, key)
        except VerificationError as error:
            raise WitnessRefused(HTTPStatus.FORBIDDEN, str(error)) from error
        with self._lock:
            seen = self.latest(origin)
            seen_size = seen.size if seen else 0
            if old_size > checkpoint.size:
                raise WitnessRefused(HTTPStatus.BAD_REQUEST, "old size is beyond the checkpoint")
            if old_size != seen_size:
                raise WitnessRefused(HTTPStatus.CONFLICT, "old size is not mine", seen_size)
            if seen is not None:
                if checkpoint.size == seen.size and checkpoint.root != seen.root:
                    raise WitnessRefused(
                        HTTPStatus.CONFLICT, "a different root for a size I saw", seen_size
                    )
                try:
                    verify_consistency(
                        seen.size, checkpoint.size, proof, seen.root, checkpoint.root
                    )
                except VerificationError as error:
                    raise WitnessRefused(HTTPStatus.UNPROCESSABLE_ENTITY, str(error)) from error
            line = self._cosign(checkpoint)
            state = {
                "size": checkpoint.size,
                "root": base64.b64encode(checkpoint.root).decode(),
                "note": note,
            }
            write_private(self._state_path(origin), json.dumps(state).encode())
        return [line]

    def _cosign(self, checkpoint: Checkpoint) -> str:
        timestamp = int(time.time())
        signature = self.key.sign(cosignature_message(checkpoint.body(), timestamp))
        vkey = self.verifier_key()
        payload = vkey.key_id + struct.pack(">Q", timestamp) + signature
        return f"\u2014 {self.name} {base64.b64encode(payload).decode()}\n"


class DirectoryWitness:
    """A witness run in process over a state directory kept apart from the database."""

    def __init__(self, core: WitnessCore) -> None:
        self.core = core
        self.name = core.name

    def add_checkpoint(self, old_size: int, proof: Sequence[bytes], note: str) -> list[str]:
        return self.core.add_checkpoint(old_size, proof, note)

    def latest(self, origin: str) -> WitnessView | None:
        return self.core.latest(origin)

    def verifier_key(self) -> VerifierKey:
        return self.core.verifier_key()


class HttpWitness:
    """A witness reached over HTTP (C2SP tlog-witness ``add-checkpoint``)."""

    def __init__(self, url: str, vkey: VerifierKey, *, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.vkey = vkey
        self.name = vkey.name
        self.timeout = timeout

    def verifier_key(self) -> VerifierKey:
        return self.vkey

    def add_checkpoint(self, old_size: int, proof: Sequence[bytes], note: str) -> list[str]:
        body = f"old {old_size}\n"
        body += "".join(base64.b64encode(item).decode() + "\n" for item in proof)
        body += "\n" + note
        request = urllib.request.Request(  # noqa: S310 - the configured witness URL
            f"{self.url}/add-checkpoint", data=body.encode(), method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                text = response.read().decode()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            known = int(detail.strip()) if error.code == 409 and detail.strip().isdigit() else None
            raise WitnessRefused(error.code, detail.strip()[:200], known) from error
        except OSError as error:
            raise WitnessRefused(HTTPStatus.SERVICE_UNAVAILABLE, str(error)) from error
        return [line + "\n" for line in text.splitlines() if line]

    def latest(self, origin: str) -> WitnessView | None:
        safe = base64.urlsafe_b64encode(origin.encode()).decode().rstrip("=")
        try:
            with urllib.request.urlopen(  # noqa: S310 - the configured witness URL
                f"{self.url}/latest/{safe}", timeout=self.timeout
            ) as response:
                state = json.loads(response.read())
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise
        return WitnessView(int(state["size"]), base64.b64decode(state["root"]), state["note"])


def parse_add_checkpoint(body: str) -> tuple[int, list[bytes], str]:
    """The request body of ``add-checkpoint``: old size, proof lines, blank, checkpoint."""
    head, separator, note = body.partition("\n\n")
    if not separator:
        raise WitnessRefused(HTTPStatus.BAD_REQUEST, "the request has no blank line")
    lines = head.split("\n")
    if not lines[0].startswith("old ") or not lines[0][4:].isdigit():
        raise WitnessRefused(HTTPStatus.BAD_REQUEST, "the request starts with 'old <size>'")
    try:
        proof = [base64.b64decode(line, validate=True) for line in lines[1:]]
    except (ValueError, binascii.Error) as error:
        raise WitnessRefused(HTTPStatus.BAD_REQUEST, "a proof line is not base64") from error
    return int(lines[0][4:]), proof, note


def serve_witness(core: WitnessCore, host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP witness over ``core``: POST /add-checkpoint, GET /latest/<origin b64>."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, text: str, content_type: str = "text/plain") -> None:
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 - the http.server interface
            if self.path.rstrip("/") != "/add-checkpoint":
                self._answer(404, "not found\n")
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > 1 << 20:
                self._answer(413, "too large\n")
                return
            try:
                old, proof, note = parse_add_checkpoint(self.rfile.read(length).decode())
                lines = core.add_checkpoint(old, proof, note)
            except WitnessRefused as refusal:
                if refusal.status == 409 and refusal.known_size is not None:
                    self._answer(409, f"{refusal.known_size}\n", "text/x.tlog.size")
                else:
                    self._answer(refusal.status, f"{refusal}\n")
                return
            except UnicodeDecodeError:
                self._answer(400, "not UTF-8\n")
                return
            self._answer(200, "".join(lines))

        def do_GET(self) -> None:  # noqa: N802 - the http.server interface
            prefix = "/latest/"
            if not self.path.startswith(prefix):
                self._answer(404, "not found\n")
                return
            padded = self.path[len(prefix) :] + "=" * (-len(self.path[len(prefix) :]) % 4)
            try:
                origin = base64.urlsafe_b64decode(padded).decode()
            except (ValueError, binascii.Error):
                self._answer(400, "bad origin\n")
                return
            seen = core.latest(origin)
            if seen is None:
                self._answer(404, "unknown log\n")
                return
            state = {"size": seen.size, "root": base64.b64encode(seen.root).decode()}
            self._answer(200, json.dumps({**state, "note": seen.note}), "application/json")

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

    return ThreadingHTTPServer((host, port), Handler)
