"""Sealing and opening record bodies."""

from __future__ import annotations

import secrets

import pytest

from carevault.keys.envelope import Envelope, RecordIntegrityError, record_aad

KEY = secrets.token_bytes(32)


def test_round_trip_and_binding_to_the_row() -> None:
    envelope = Envelope()
    aad = record_aad("Patient", "p1", 1, "k1")
    sealed = envelope.seal(KEY, aad, b'{"x":1}')
    assert b'{"x":1}' not in sealed
    assert envelope.open(KEY, aad, sealed, where="Patient/p1") == b'{"x":1}'
    for other in (
        record_aad("Patient", "p2", 1, "k1"),
        record_aad("Patient", "p1", 2, "k1"),
        record_aad("Observation", "p1", 1, "k1"),
        record_aad("Patient", "p1", 1, "k2"),
    ):
        with pytest.raises(RecordIntegrityError, match="Patient/p1"):
            envelope.open(KEY, other, sealed, where="Patient/p1")
    with pytest.raises(RecordIntegrityError):
        envelope.open(secrets.token_bytes(32), aad, sealed, where="Patient/p1")


def test_an_encrypting_envelope_refuses_plaintext_rows() -> None:
    plain = Envelope(encrypted=False).seal(None, b"", b"{}")
    with pytest.raises(RecordIntegrityError, match="not sealed"):
        Envelope().open(KEY, b"", plain, where="Patient/p1")
    assert Envelope(encrypted=False).open(None, b"", plain, where="x") == b"{}"
