"""Sealing and opening record bodies."""

from __future__ import annotations

import os
import secrets
import warnings

import pytest

from carevault.keys.envelope import Envelope, Nonces, RecordIntegrityError, record_aad

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


def test_nonces_are_never_handed_out_twice_across_refills() -> None:
    nonces = Nonces()
    taken = [nonces.take() for _ in range(3 * 512 + 7)]
    assert {len(nonce) for nonce in taken} == {12}
    assert len(set(taken)) == len(taken)


def test_records_sealed_one_after_another_carry_distinct_nonces() -> None:
    seal = Envelope().sealer(KEY)
    nonces = {seal(b"aad", b"{}")[1:13] for _ in range(1500)}
    assert len(nonces) == 1500


def test_a_forked_child_draws_its_own_nonces_not_its_parents_unused_ones() -> None:
    nonces = Nonces()
    nonces.take()  # the pool is drawn: 511 unused nonces that a child would inherit
    read, write = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12 warns of a fork in a process with threads (pytest-xdist's); the
        # child only draws nonces and writes them to the pipe.
        warnings.simplefilter("ignore", DeprecationWarning)
        child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            os.write(write, b"".join(nonces.take() for _ in range(4)))
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with os.fdopen(read, "rb") as pipe:
        drawn = pipe.read()
    in_child = {drawn[at : at + 12] for at in range(0, len(drawn), 12)}
    assert len(in_child) == 4
    in_parent = {nonces.take() for _ in range(511)}
    assert not in_child & in_parent
