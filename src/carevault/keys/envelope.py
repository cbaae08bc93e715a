"""Sealing resource bodies: AES-256-GCM under the patient's data key.

The associated data binds each ciphertext to its row (resource type, id,
version and the data key's id), so a ciphertext copied onto another resource's
row, another version, or another patient fails to open with ``RecordIntegrityError``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_SEALED = b"\x01"
_PLAIN = b"\x00"
_NONCE_BYTES = 12


class RecordIntegrityError(RuntimeError):
    """A stored record failed its integrity check: altered, moved, or sealed by another key."""


def _plain(aad: bytes, body: bytes) -> bytes:
    return _PLAIN + body


def record_aad(resource_type: str, resource_id: str, version_id: int, key_id: str) -> bytes:
    return f"carevault-record/1|{resource_type}|{resource_id}|{version_id}|{key_id}".encode()


class Envelope:
    """Seals and opens record bodies.

    ``encrypted=False`` exists only for the benchmark's unencrypted baseline
    (settings refuse it elsewhere). An envelope that encrypts refuses to open
    plaintext rows, so an intruder cannot slip unsealed records in.
    """

    def __init__(self, *, encrypted: bool = True) -> None:
        self.encrypted = encrypted

    def seal(self, key: bytes | None, aad: bytes, body: bytes) -> bytes:
        return self.sealer(key)(aad, body)

    def sealer(self, key: bytes | None) -> Callable[[bytes, bytes], bytes]:
        """``seal`` under ``key`` as a function of (aad, body), the cipher made once: a bulk
        load seals a patient's records one after another, and making the cipher cost
        nearly as much as encrypting a record."""
        if not self.encrypted:
            return _plain
        assert key is not None  # noqa: S101 - the vault always passes a key when encrypting
        cipher = AESGCM(key)

        def seal(aad: bytes, body: bytes) -> bytes:
            nonce = secrets.token_bytes(_NONCE_BYTES)
            return _SEALED + nonce + cipher.encrypt(nonce, body, aad)

        return seal

    def open(self, key: bytes | None, aad: bytes, sealed: bytes, *, where: str) -> bytes:
        marker = sealed[:1]
        if marker == _PLAIN and not self.encrypted:
            return sealed[1:]
        if marker != _SEALED or not self.encrypted or key is None:
            raise RecordIntegrityError(f"{where} is not sealed as this server expects")
        nonce = sealed[1 : 1 + _NONCE_BYTES]
        try:
            return AESGCM(key).decrypt(nonce, sealed[1 + _NONCE_BYTES :], aad)
        except InvalidTag as error:
            raise RecordIntegrityError(
                f"{where} failed its integrity check: the stored ciphertext does not belong "
                "to this row or was altered"
            ) from error
