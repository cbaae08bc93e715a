"""Paging cursors of type- and system-level history: where the next page starts, sealed.

A next link's position counts candidate versions, among them those the caller may not
read; given in the clear, the gap between it and the versions shown told how many of
those had been passed over (and, by the versions on either side, when they were
written). The position goes out only encrypted and authenticated (AES-GCM under a key
derived from the vault's index key, the same in every process of a deployment), bound
to the caller's principal, the level and type, and ``_since``: one cursor says nothing
(every one is the same length), and one altered, made up, or sent by anyone else or
with another request is refused (400).
"""

from __future__ import annotations

import base64
import binascii
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from carevault.fhir import jsonio
from carevault.fhir.outcome import FhirError, bad_request

_FORMAT = b"\x01"
_NONCE_BYTES = 12
_POSITION_BYTES = 8
#: Base64url of format + nonce + position + tag, without padding.
LENGTH = len(
    base64.urlsafe_b64encode(b"\0" * (1 + _NONCE_BYTES + _POSITION_BYTES + 16)).rstrip(b"=")
)


def _binding(principal: str, type_name: str | None, since_us: int | None) -> bytes:
    return _FORMAT + jsonio.dumps(["history", principal, type_name or "*", since_us])


def seal(
    key: bytes, principal: str, type_name: str | None, since_us: int | None, position: int
) -> str:
    """The cursor of candidate ``position`` for this caller's request."""
    nonce = secrets.token_bytes(_NONCE_BYTES)
    sealed = AESGCM(key).encrypt(
        nonce,
        position.to_bytes(_POSITION_BYTES, "big"),
        _binding(principal, type_name, since_us),
    )
    return base64.urlsafe_b64encode(_FORMAT + nonce + sealed).rstrip(b"=").decode("ascii")


def opened(
    key: bytes, principal: str, type_name: str | None, since_us: int | None, cursor: str
) -> int:
    """The candidate position ``cursor`` holds, if this server sealed it for this caller
    and this request; otherwise a 400 that says no more than that."""
    if len(cursor) != LENGTH:
        raise _refused()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError) as error:
        raise _refused() from error
    if raw[:1] != _FORMAT:
        raise _refused()
    nonce, sealed = raw[1 : 1 + _NONCE_BYTES], raw[1 + _NONCE_BYTES :]
    try:
        plain = AESGCM(key).decrypt(nonce, sealed, _binding(principal, type_name, since_us))
    except InvalidTag as error:
        raise _refused() from error
    return int.from_bytes(plain, "big")


def _refused() -> FhirError:
    return bad_request(
        "_offset of a type or system history is taken only from a next link this server "
        "gave the same caller for the same request"
    )
