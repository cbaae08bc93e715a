"""PKCE (RFC 7636), S256 only: plain is refused, as SMART App Launch v2 requires."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


def challenge_for(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_verifier() -> str:
    return secrets.token_urlsafe(48)


def verifier_matches(verifier: str, challenge: str) -> bool:
    if not _VERIFIER.match(verifier):
        return False
    return hmac.compare_digest(challenge_for(verifier), challenge)


def valid_challenge(challenge: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9\-_]{43}", challenge) is not None
