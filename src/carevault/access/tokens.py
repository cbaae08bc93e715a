"""Access tokens: short-lived JWTs signed with Ed25519 (EdDSA).

Verification accepts only EdDSA (never ``none``, never HMAC with a public key),
checks issuer, audience, expiry and the required claims, and then the gate
checks the session the token belongs to is still live.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

_REQUIRED = ["exp", "iat", "nbf", "iss", "aud", "sub", "sid", "jti", "scope"]


class InvalidToken(ValueError):
    """The token is not one this server issued, or no longer valid; the reason is for the audit."""


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    session_id: str
    scope: str
    client_id: str
    expires_at: int
    token_id: str


class TokenSigner:
    def __init__(
        self, key: Ed25519PrivateKey, issuer: str, audience: str, *, cache_size: int = 10_000
    ) -> None:
        self._key = key
        self._public = key.public_key()
        self.issuer = issuer
        self.audience = audience
        # Tokens already verified: a clinic app sends the same one on every request for
        # its five minutes. Expiry is still checked on every use; revocation is the
        # session's business, checked on every request by the caller.
        self._verified: OrderedDict[str, TokenClaims] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def issue(
        self, *, subject: str, session_id: str, scope: str, client_id: str, now: int, lifetime: int
    ) -> str:
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "sid": session_id,
            "client_id": client_id,
            "scope": scope,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": secrets.token_urlsafe(12),
        }
        return jwt.encode(claims, self._key, algorithm="EdDSA")

    def verify(self, token: str) -> TokenClaims:
        with self._lock:
            known = self._verified.get(token)
            if known is not None:
                self._verified.move_to_end(token)
        if known is not None:
            if time.time() >= known.expires_at:
                raise InvalidToken("token expired")
            return known
        claims = self._verify(token)
        with self._lock:
            self._verified[token] = claims
            while len(self._verified) > self._cache_size:
                self._verified.popitem(last=False)
        return claims

    def _verify(self, token: str) -> TokenClaims:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != "EdDSA":
                raise InvalidToken(
                    f"token algorithm {str(header.get('alg'))[:20]!r} is not accepted"
                )
            claims = jwt.decode(
                token,
                self._public,
                algorithms=["EdDSA"],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": _REQUIRED},
            )
        except InvalidToken:
            raise
        except jwt.ExpiredSignatureError:
            raise InvalidToken("token expired") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("token is from another issuer") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("token signature does not verify") from None
        except jwt.PyJWTError as error:
            raise InvalidToken(f"token rejected: {type(error).__name__}") from None
        return TokenClaims(
            subject=str(claims["sub"]),
            session_id=str(claims["sid"]),
            scope=str(claims["scope"]),
            client_id=str(claims.get("client_id", "")),
            expires_at=int(claims["exp"]),
            token_id=str(claims["jti"]),
        )
