"""Blind-index tokens."""

from __future__ import annotations

import secrets

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
