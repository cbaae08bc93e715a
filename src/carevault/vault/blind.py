"""Blind indexes: HMAC-SHA256 of normalised values under the index key.

Equal values give equal tokens, so equality search works without storing the
value; without the index key a token says nothing about its value. Tokens are
separated by resource type and search parameter, so the same phone number in a
Patient and a Practitioner gives unrelated tokens. Truncated to 128 bits: ample
against collisions among millions of values.
"""

from __future__ import annotations

import hashlib
import hmac

TOKEN_BYTES = 16


class BlindIndex:
    def __init__(self, key: bytes | None) -> None:
        """``key=None`` only for the benchmark's unencrypted baseline: values kept readable."""
        self._key = key

    def token(self, resource_type: str, param: str, value: str) -> bytes:
        message = f"{resource_type}|{param}|{value}".encode()
        if self._key is None:
            return message if len(message) <= 64 else hashlib.sha256(message).digest()
        # One-shot: the same HMAC, without building an HMAC object per token.
        return hmac.digest(self._key, message, "sha256")[:TOKEN_BYTES]
