"""OpenID Connect ID tokens: who signed in, for the app that asked (``openid``).

Signed with RS256, the algorithm OpenID Connect Discovery and SMART App Launch require
every relying party to accept, under a key of its own (never the access-token key):
an ID token says who someone is, and must not be usable as an access token, nor an
access token as an ID token. The public key is published as a JWKS whose ``kid`` is
the key's RFC 7638 thumbprint.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

ALGORITHM = "RS256"


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class Identity:
    """Who an ID token names. ``fhir_user``: a relative reference (``Practitioner/…``)."""

    account_id: str
    display_name: str
    fhir_user: str | None


class IdTokens:
    """Issues ID tokens under the RSA key ``load`` gives. The key is loaded on first use
    (a JWKS asked for or an ID token issued), not at start: checking an RSA key as it is
    loaded costs about a tenth of a second, which every CLI command would pay."""

    def __init__(self, load: Callable[[], RSAPrivateKey], *, lifetime: int) -> None:
        self._load = load
        self._lock = threading.Lock()
        self._loaded: tuple[RSAPrivateKey, dict[str, str]] | None = None
        self.lifetime = lifetime

    def _key(self) -> tuple[RSAPrivateKey, dict[str, str]]:
        with self._lock:
            if self._loaded is None:
                key = self._load()
                numbers = key.public_key().public_numbers()
                members = {"e": _b64(numbers.e), "kty": "RSA", "n": _b64(numbers.n)}
                canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
                thumbprint = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest())
                public = {
                    **members,
                    "kid": thumbprint.rstrip(b"=").decode(),
                    "use": "sig",
                    "alg": ALGORITHM,
                }
                self._loaded = (key, public)
            return self._loaded

    def jwks(self) -> dict[str, Any]:
        return {"keys": [dict(self._key()[1])]}

    def issue(
        self,
        identity: Identity,
        *,
        issuer: str,
        client_id: str,
        nonce: str | None,
        now: int,
        with_profile: bool,
    ) -> str:
        """An ID token for ``client_id``; ``fhirUser`` is an absolute URL on ``issuer``'s
        FHIR base, and ``name`` is there only if ``profile`` was granted."""
        claims: dict[str, Any] = {
            "iss": issuer,
            "sub": identity.account_id,
            "aud": client_id,
            "azp": client_id,
            "iat": now,
            "exp": now + self.lifetime,
            "auth_time": now,
            "jti": secrets.token_urlsafe(12),
            # Password and TOTP: multi-factor (RFC 8176 method references).
            "amr": ["pwd", "otp", "mfa"],
        }
        if nonce:
            claims["nonce"] = nonce
        if identity.fhir_user:
            claims["fhirUser"] = f"{issuer}/fhir/{identity.fhir_user}"
        if with_profile:
            claims["name"] = identity.display_name
        key, public = self._key()
        return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": public["kid"]})
