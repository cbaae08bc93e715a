"""Paging cursors of type- and system-level history: where the next page starts, sealed.

A next link names the version the next page starts at (``VersionKey``: when it was
written, its type, id and version), never a position among candidates: a position
counted versions the caller may not read, moved when records left the caller's reach
(skipping versions they could read) and, replayed later, told how many versions had
been written since. The key goes out only encrypted and authenticated (AES-GCM under a
key derived from the vault's index key, the same in every process of a deployment),
padded to one length, bound to the caller's principal, the level and type, and
``_since``: one cursor says nothing (every one is the same length), and one altered,
made up, or sent by anyone else or with another request is refused (400).
"""

from __future__ import annotations

import base64
import binascii
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from carevault.fhir import jsonio
from carevault.fhir.outcome import FhirError, bad_request
from carevault.vault.records import VersionKey

_FORMAT = b"\x02"
_NONCE_BYTES = 12
#: The key as JSON, padded with spaces: a type name (at most 40 characters in R4), an id
#: (at most 64), a time in microseconds and a version fit with room to spare.
_KEY_BYTES = 192
#: Base64url of format + nonce + key + tag, without padding.
LENGTH = len(base64.urlsafe_b64encode(b"\0" * (1 + _NONCE_BYTES + _KEY_BYTES + 16)).rstrip(b"="))


def _binding(principal: str, type_name: str | None, since_us: int | None) -> bytes:
    return _FORMAT + jsonio.dumps(["history", principal, type_name or "*", since_us])


def seal(
    key: bytes, principal: str, type_name: str | None, since_us: int | None, start: VersionKey
) -> str:
    """The cursor of a page starting at version ``start``, for this caller's request."""
    plain = jsonio.dumps(
        [start.last_updated_us, start.resource_type, start.resource_id, start.version_id]
    )
    if len(plain) > _KEY_BYTES:  # ids are at most 64 characters: never, but never silently
        raise ValueError("a history position too long to seal")
    nonce = secrets.token_bytes(_NONCE_BYTES)
    sealed = AESGCM(key).encrypt(
        nonce, plain.ljust(_KEY_BYTES, b" "), _binding(principal, type_name, since_us)
    )
    return base64.urlsafe_b64encode(_FORMAT + nonce + sealed).rstrip(b"=").decode("ascii")


def opened(
    key: bytes, principal: str, type_name: str | None, since_us: int | None, cursor: str
) -> VersionKey:
    """The version ``cursor`` starts at, if this server sealed it for this caller and
    this request; otherwise a 400 that says no more than that."""
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
    at, resource_type, resource_id, version = jsonio.parse(plain.rstrip(b" "))
    return VersionKey(int(at), str(resource_type), str(resource_id), int(version))


def _refused() -> FhirError:
    return bad_request(
        "_offset of a type or system history is taken only from a next link this server "
        "gave the same caller for the same request"
    )
