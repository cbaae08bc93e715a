"""Blind-index tokens."""

from __future__ import annotations

import hmac
import secrets

from hypothesis import given, settings
from hypothesis import strategies as st

from carevault.vault.blind import BlindIndex

KEY = secrets.token_bytes(32)


def test_blind_tokens_are_keyed_and_separated_by_type_and_parameter() -> None:
    index = BlindIndex(KEY)
    token = index.token("Patient", "phone", "any|91234567")
    assert len(token) == 16
    assert token == index.token("Patient", "phone", "any|91234567")
    assert token != index.token("Practitioner", "phone", "any|91234567")
    assert token != index.token("Patient", "email", "any|91234567")
    assert token != BlindIndex(secrets.token_bytes(32)).token("Patient", "phone", "any|91234567")
    assert b"91234567" not in token


@settings(max_examples=200)
@given(
    key=st.binary(min_size=1, max_size=200),
    resource_type=st.text(max_size=20),
    param=st.text(max_size=20),
    value=st.text(max_size=300),
)
def test_blind_tokens_are_hmac_sha256_of_the_term_truncated(
    key: bytes, resource_type: str, param: str, value: str
) -> None:
    # The index is built from pads hashed once; every token must still be exactly the
    # HMAC stored tokens were made with, keys longer than a block (hashed first) included.
    message = f"{resource_type}|{param}|{value}".encode()
    expected = hmac.digest(key, message, "sha256")[:16]
    assert BlindIndex(key).token(resource_type, param, value) == expected
