"""Access tokens: EdDSA JWTs that verify only if this server signed them, for this
audience, now; everything else is ``InvalidToken`` with a reason for the audit."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from carevault.access.tokens import InvalidToken, TokenClaims, TokenSigner

ISSUER = "https://ehr.example.hk"
AUDIENCE = f"{ISSUER}/fhir"
KEY = Ed25519PrivateKey.generate()
SIGNER = TokenSigner(KEY, ISSUER, AUDIENCE)


def _issue(signer: TokenSigner = SIGNER, now: int | None = None, lifetime: int = 300) -> str:
    return signer.issue(
        subject="st-0001",
        session_id="session-1",
        scope="openid user/*.rs",
        client_id="clinic-app",
        now=int(time.time()) if now is None else now,
        lifetime=lifetime,
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def test_a_token_verifies_to_the_claims_it_was_issued_with() -> None:
    now = int(time.time())
    token = _issue(now=now)

    claims = SIGNER.verify(token)

    assert claims == TokenClaims(
        subject="st-0001",
        session_id="session-1",
        scope="openid user/*.rs",
        client_id="clinic-app",
        expires_at=now + 300,
        token_id=claims.token_id,
    )
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "typ": "JWT"}
    raw = _claims(token)
    assert (raw["iss"], raw["aud"], raw["iat"], raw["nbf"]) == (ISSUER, AUDIENCE, now, now)


def test_every_token_has_its_own_id() -> None:
    assert len({SIGNER.verify(_issue()).token_id for _ in range(10)}) == 10


def _unsigned(alg: str) -> str:
    header = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(_claims(_issue())).encode())}."


def _hs256_with_public_key() -> str:
    public = KEY.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return jwt.encode(_claims(_issue()), public, algorithm="HS256")


def _without(claim: str) -> str:
    claims = {name: value for name, value in _claims(_issue()).items() if name != claim}
    return jwt.encode(claims, KEY, algorithm="EdDSA")


def _tampered() -> str:
    header, _, signature = _issue().split(".")
    claims = {**_claims(_issue()), "sub": "st-9999"}
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


REFUSED: dict[str, tuple[Any, str]] = {
    "expired": (lambda: _issue(now=int(time.time()) - 600, lifetime=300), "token expired"),
    "not yet valid": (lambda: _issue(now=int(time.time()) + 600), "ImmatureSignatureError"),
    "another key": (
        lambda: _issue(TokenSigner(Ed25519PrivateKey.generate(), ISSUER, AUDIENCE)),
        "token signature does not verify",
    ),
    "tampered claims": (_tampered, "token signature does not verify"),
    "another issuer": (
        lambda: _issue(TokenSigner(KEY, "https://evil.example", AUDIENCE)),
        "token is from another issuer",
    ),
    "another audience": (
        lambda: _issue(TokenSigner(KEY, ISSUER, "https://other.example/fhir")),
        "token is for another audience",
    ),
    "alg none": (lambda: _unsigned("none"), "token algorithm 'none' is not accepted"),
    "alg None": (lambda: _unsigned("None"), "token algorithm 'None' is not accepted"),
    "HS256 keyed with the public key": (
        _hs256_with_public_key,
        "token algorithm 'HS256' is not accepted",
    ),
    "no session": (lambda: _without("sid"), "MissingRequiredClaimError"),
    "no scope": (lambda: _without("scope"), "MissingRequiredClaimError"),
    "no expiry": (lambda: _without("exp"), "MissingRequiredClaimError"),
    "garbage": (lambda: "not-a-token", "DecodeError"),
    "empty": (lambda: "", "DecodeError"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_a_token_this_server_would_not_issue_now_is_refused(case: str) -> None:
    make, reason = REFUSED[case]

    with pytest.raises(InvalidToken, match=reason):
        SIGNER.verify(make())
