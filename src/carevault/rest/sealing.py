"""Positions a paging link carries sealed: encrypted and authenticated (AES-GCM under the
vault's paging key), padded to one length so that one says nothing by its size, and
bound to what it may be used with (the caller, the request) through the associated
data. History cursors (``rest/cursor.py``) and the offsets of searches that tell only
what they show (``rest/offsets.py``) are sealed so; each has its own format byte, so
one is never taken for the other."""

from __future__ import annotations

import base64
import binascii
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_BYTES = 12
_TAG_BYTES = 16


def sealed_length(width: int) -> int:
    """The length of a sealed value of ``width`` plain bytes (base64url, no padding)."""
    raw = 1 + _NONCE_BYTES + width + _TAG_BYTES
    return len(base64.urlsafe_b64encode(b"\0" * raw).rstrip(b"="))


def seal(key: bytes, form: bytes, plain: bytes, width: int, binding: bytes) -> str:
    """``plain`` padded with spaces to ``width``, sealed under ``key`` for ``binding``."""
    if len(plain) > width:
        raise ValueError("a position too long to seal")
    nonce = secrets.token_bytes(_NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, plain.ljust(width, b" "), form + binding)
    return base64.urlsafe_b64encode(form + nonce + sealed).rstrip(b"=").decode("ascii")


def opened(key: bytes, form: bytes, width: int, value: str, binding: bytes) -> bytes | None:
    """What ``value`` seals (padding taken off), if it was sealed under ``key`` in
    ``form`` for ``binding``; None for anything else (altered, made up, another's)."""
    if len(value) != sealed_length(width):
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None
    # One spelling of each sealed value: where the raw length leaves spare bits in the
    # last character, another character decoded to the same bytes and was taken.
    if raw[:1] != form or base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != value:
        return None
    nonce, sealed = raw[1 : 1 + _NONCE_BYTES], raw[1 + _NONCE_BYTES :]
    try:
        plain = AESGCM(key).decrypt(nonce, sealed, form + binding)
    except InvalidTag:
        return None
    return plain.rstrip(b" ")
