"""PKCE (RFC 7636), S256 only."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carevault.access import pkce

#: RFC 7636, Appendix B.
RFC_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"

UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"


def test_the_challenge_is_the_rfc_7636_s256_transform() -> None:
    assert pkce.challenge_for(RFC_VERIFIER) == RFC_CHALLENGE
    assert pkce.verifier_matches(RFC_VERIFIER, RFC_CHALLENGE)


def test_new_verifiers_are_valid_random_and_match_their_challenge() -> None:
    verifiers = {pkce.new_verifier() for _ in range(20)}

    assert len(verifiers) == 20
    for verifier in verifiers:
        assert 43 <= len(verifier) <= 128
        assert set(verifier) <= set(UNRESERVED)
        assert pkce.verifier_matches(verifier, pkce.challenge_for(verifier))


@pytest.mark.parametrize(
    "verifier",
    [
        RFC_VERIFIER[:-1] + "Y",  # another verifier
        RFC_CHALLENGE,  # "plain": the challenge itself sent back
        "",
        "a" * 42,  # too short
        "a" * 129,  # too long
        RFC_VERIFIER + "\n",
        RFC_VERIFIER[:-1] + "+",  # not an unreserved character
        RFC_VERIFIER[:-1] + "é",
    ],
)
def test_a_verifier_that_is_not_the_one_is_refused(verifier: str) -> None:
    assert not pkce.verifier_matches(verifier, RFC_CHALLENGE)


@pytest.mark.parametrize(
    ("challenge", "valid"),
    [
        (RFC_CHALLENGE, True),
        (RFC_CHALLENGE[:-1], False),
        (RFC_CHALLENGE + "A", False),
        (RFC_CHALLENGE[:-1] + "=", False),  # base64url without padding
        (RFC_CHALLENGE[:-1] + "+", False),  # base64url, not base64
        (RFC_CHALLENGE + "\n", False),
        ("", False),
    ],
)
def test_only_an_s256_shaped_challenge_is_valid(challenge: str, valid: bool) -> None:
    assert pkce.valid_challenge(challenge) is valid


@given(st.text(alphabet=UNRESERVED, min_size=43, max_size=128))
def test_every_valid_verifier_matches_its_own_challenge(verifier: str) -> None:
    challenge = pkce.challenge_for(verifier)

    assert pkce.valid_challenge(challenge)
    assert pkce.verifier_matches(verifier, challenge)
