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


def _nonce(sealed: bytes) -> bytes:
    return sealed[1:13]


def test_no_two_seals_share_a_nonce_across_threads_and_buffer_refills() -> None:
    # Nonces come from a buffer refilled from the operating system (``_Nonces``): more
    # seals than one buffer holds, from four threads at once, and every nonce differs.
    import threading

    seal = Envelope().sealer(KEY)
    found: list[bytes] = []
    lock = threading.Lock()

    def many() -> None:
        mine = [_nonce(seal(b"aad", b"{}")) for _ in range(700)]
        with lock:
            found.extend(mine)

    threads = [threading.Thread(target=many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 2800
    assert len(set(found)) == 2800


def test_a_forked_child_never_seals_with_its_parents_buffered_nonces() -> None:
    import os

    seal = Envelope().sealer(KEY)
    seal(b"aad", b"{}")  # the buffer now holds the parent's next nonces
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.close(read)
        os.write(write, b"".join(_nonce(seal(b"aad", b"{}")) for _ in range(5)))
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        theirs = pipe.read()
    os.waitpid(child, 0)
    ours = b"".join(_nonce(seal(b"aad", b"{}")) for _ in range(5))
    assert len(theirs) == len(ours) == 60
    assert {theirs[n : n + 12] for n in range(0, 60, 12)}.isdisjoint(
        {ours[n : n + 12] for n in range(0, 60, 12)}
    )
