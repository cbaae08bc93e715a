"""Sealing resource bodies: AES-256-GCM under the patient's data key.

The associated data binds each ciphertext to its row (resource type, id,
version and the data key's id), so a ciphertext copied onto another resource's
row, another version, or another patient fails to open with ``RecordIntegrityError``.
Records sealed since adversary round 69 bind the clear facts the gate decides on too
(the patient's pseudonym and the clinic), so that someone who may write to the
database, but holds no key, cannot move a record to another patient or clinic by
editing those columns (``record_aad``, form 2).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from threading import Lock

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_SEALED = b"\x01"
#: Sealed as ``_SEALED``, under associated data of form 2 (``record_aad``). The marker
#: only says which form to rebuild: a ciphertext opens under the form it was sealed
#: with and no other, so changing the marker gains an insider nothing.
_BOUND = b"\x02"
_PLAIN = b"\x00"
_NONCE_BYTES = 12
#: Nonces drawn from the operating system at once (``Nonces``).
_NONCES_AT_ONCE = 512


class Nonces:
    """Random 96-bit AES-GCM nonces, drawn from the operating system's CSPRNG 512 at a
    time and handed out in order, each once.

    As random as one ``os.urandom(12)`` a record (the same generator, sliced), and the
    same bound on a repeat (random nonces, 2^-32 after 2^32 records under one key; a
    data key seals one patient's records). Why: a bulk load seals thousands of records a
    second, and each draw is a system call that lets go of the GIL; the loader's other
    threads (the checking processes' feeder, the ledger's writer) took it every time,
    and the writer waited for it back (13 µs a record in a profile of the import).
    A forked child starts with an empty pool, never with its parent's unused nonces (a
    hook at fork rather than a check of the process id at every take: ``getpid`` is a
    system call, 2.7 % of the writer's time in a profile of the import). Spawned
    processes (the checking processes, ``serve --workers``) import this module afresh.

    Meant to be made once per process (``_NONCES``): the fork hook stays registered, and
    the instance alive, for the process's life. A machine cloned whole (a VM snapshot
    restored twice, a checkpointed process restored twice) would hand both copies the
    same unused nonces, up to 511; the kernel's generator, drawn a record at a time, is
    reseeded on such a clone on recent kernels. Clone a running server's memory and both
    copies already hold the same data keys: restart it instead.
    """

    def __init__(self) -> None:
        self._forget()
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        """An empty pool and a free lock: at the start, and in a forked child (whose
        copy of the parent's unused nonces must go, and whose lock another thread of the
        parent may have held at the fork)."""
        self._lock, self._pool, self._at = Lock(), b"", 0

    def take(self) -> bytes:
        with self._lock:
            at = self._at
            if at + _NONCE_BYTES > len(self._pool):
                self._pool, at = os.urandom(_NONCE_BYTES * _NONCES_AT_ONCE), 0
            self._at = at + _NONCE_BYTES
            return self._pool[at : at + _NONCE_BYTES]


_NONCES = Nonces()


class RecordIntegrityError(RuntimeError):
    """A stored record failed its integrity check: altered, moved, or sealed by another key."""


def _plain(aad: bytes, body: bytes) -> bytes:
    return _PLAIN + body


#: The form of the associated data of records sealed from now on (``record_aad``).
RECORD_FORM = 2


def record_aad(
    resource_type: str,
    resource_id: str,
    version_id: int,
    key_id: str,
    patient_pseudonym: str | None = None,
    clinic_id: str | None = None,
    *,
    form: int = RECORD_FORM,
) -> bytes:
    """The associated data of a record's version. Form 1 (records sealed before adversary
    round 69) names the type, id, version and data key; form 2 adds the patient's
    pseudonym and the clinic stored beside the ciphertext, which the gate's decision
    reads in the clear."""
    if form == 1:
        return f"carevault-record/1|{resource_type}|{resource_id}|{version_id}|{key_id}".encode()
    return (
        f"carevault-record/2|{resource_type}|{resource_id}|{version_id}|{key_id}"
        f"|{patient_pseudonym or ''}|{clinic_id or ''}"
    ).encode()


def sealed_form(sealed: bytes) -> int:
    """Which form of associated data ``sealed`` was sealed under (1 for plain or unknown
    markers: opening refuses those anyway)."""
    return RECORD_FORM if sealed[:1] == _BOUND else 1


class Envelope:
    """Seals and opens record bodies.

    ``encrypted=False`` exists only for the benchmark's unencrypted baseline
    (settings refuse it elsewhere). An envelope that encrypts refuses to open
    plaintext rows, so an intruder cannot slip unsealed records in.
    """

    def __init__(self, *, encrypted: bool = True) -> None:
        self.encrypted = encrypted

    def seal(self, key: bytes | None, aad: bytes, body: bytes) -> bytes:
        return self.sealer(key)(aad, body)

    def sealer(self, key: bytes | None, *, form: int = 1) -> Callable[[bytes, bytes], bytes]:
        """``seal`` under ``key`` as a function of (aad, body), the cipher made once: a bulk
        load seals a patient's records one after another, and making the cipher cost
        nearly as much as encrypting a record. ``form``: the form of ``record_aad`` the
        caller passes (records), marked so that opening rebuilds the same one."""
        if not self.encrypted:
            return _plain
        assert key is not None  # noqa: S101 - the vault always passes a key when encrypting
        cipher = AESGCM(key)
        take_nonce = _NONCES.take
        marker = _BOUND if form == RECORD_FORM else _SEALED

        def seal(aad: bytes, body: bytes) -> bytes:
            nonce = take_nonce()
            return marker + nonce + cipher.encrypt(nonce, body, aad)

        return seal

    def open(self, key: bytes | None, aad: bytes, sealed: bytes, *, where: str) -> bytes:
        marker = sealed[:1]
        if marker == _PLAIN and not self.encrypted:
            return sealed[1:]
        if marker not in (_SEALED, _BOUND) or not self.encrypted or key is None:
            raise RecordIntegrityError(f"{where} is not sealed as this server expects")
        nonce = sealed[1 : 1 + _NONCE_BYTES]
        try:
            return AESGCM(key).decrypt(nonce, sealed[1 + _NONCE_BYTES :], aad)
        except InvalidTag as error:
            raise RecordIntegrityError(
                f"{where} failed its integrity check: the stored ciphertext does not belong "
                "to this row or was altered"
            ) from error
