"""Signed checkpoints of a ledger: made on a schedule, on demand and at every
containment action, signed with a key kept outside the database (Ed25519, C2SP
signed note) and handed to the configured witnesses for their cosignatures."""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import insert, select

from carevault.db import ROW_ID_MAX, read_transaction, write_transaction
from carevault.ledger.store import LedgerCorrupt, LedgerStore
from carevault.ledger.verifier import (
    ED25519_TYPE,
    Checkpoint,
    NoteSignature,
    SignedNote,
    VerifierKey,
    key_hash,
)
from carevault.ledger.witness import Witness, WitnessRefused
from carevault.logsafe import describe

log = logging.getLogger("carevault.ledger")


class CheckpointSigner:
    """Signs checkpoints of one log (its origin) with an Ed25519 key."""

    def __init__(self, origin: str, key: Ed25519PrivateKey) -> None:
        self.origin = origin
        self.key = key
        public = key.public_key().public_bytes_raw()
        self.vkey = VerifierKey(
            origin, key_hash(origin, ED25519_TYPE, public), ED25519_TYPE, public
        )

    def sign(self, size: int, root: bytes) -> str:
        body = Checkpoint(self.origin, size, root).body()
        signature = NoteSignature(self.origin, self.vkey.key_id, self.key.sign(body.encode()))
        return SignedNote(body, (signature,)).render()


@dataclass(frozen=True)
class StoredCheckpoint:
    checkpoint_id: int
    size: int
    root: bytes
    at_us: int
    reason: str
    note: str
    witnessed_by: tuple[str, ...]


class Checkpoints:
    def __init__(
        self,
        store: LedgerStore,
        signer: CheckpointSigner,
        witnesses: Sequence[Witness],
        now_us: Callable[[], int],
    ) -> None:
        self.store = store
        self.signer = signer
        self.witnesses = list(witnesses)
        self.now_us = now_us
        self._lock = threading.Lock()
        #: Told of each witness's refusal (the composition root records it in the audit
        #: ledger, where the detectors see it): a log line alone went unnoticed while a
        #: rolled-back database was served on (adversary round 69). Never raises into
        #: ``make``: the checkpoint is kept whatever becomes of the report.
        self.refused: Callable[[str, int, WitnessRefused], None] | None = None

    def make(self, reason: str) -> StoredCheckpoint:
        """Sign the current head, gather cosignatures, store it; return it.

        The root is recomputed from the tiles and compared with the head row, so a
        tampered head is never signed. A witness that refuses is logged and named
        in the result (``witnessed_by`` lacks it); the checkpoint is kept anyway,
        since refusing to checkpoint would hide the very evidence.
        """
        with self._lock:
            size, head_root = self.store.head()
            root = self.store.root(size)
            if root != head_root:
                raise LedgerCorrupt(f"the {self.store.name} head does not match its tiles")
            note = self.signer.sign(size, root)
            full, witnessed = self._gather(size, note)
            at = self.now_us()
            table = self.store.tables.checkpoint
            with write_transaction(self.store.engine) as connection:
                checkpoint_id = connection.execute(
                    insert(table)
                    .values(
                        ledger=self.store.name,
                        size=size,
                        root=root,
                        at_us=at,
                        reason=reason[:64],
                        note=full,
                    )
                    .returning(table.c.checkpoint_id)
                ).scalar_one()
            return StoredCheckpoint(
                int(checkpoint_id), size, root, at, reason, full, tuple(witnessed)
            )

    def witness_size(self, size: int) -> tuple[bytes, str, tuple[str, ...]]:
        """Sign the tree of the first ``size`` entries and have the witnesses cosign it,
        without storing it here: a backup keeps it with the copy whose head it is.
        Returns the root, the cosigned note and the witnesses that signed."""
        with self._lock:
            root = self.store.root(size)
            full, witnessed = self._gather(size, self.signer.sign(size, root))
        return root, full, tuple(witnessed)

    def _gather(self, size: int, note: str) -> tuple[str, list[str]]:
        cosignatures: list[str] = []
        witnessed: list[str] = []
        for witness in self.witnesses:
            try:
                cosignatures.extend(self._cosign(witness, size, note))
                witnessed.append(witness.name)
            except WitnessRefused as refusal:
                log.error(
                    "witness %s refused checkpoint %d of %s: %s %s",
                    witness.name,
                    size,
                    self.store.name,
                    refusal.status,
                    refusal,
                )
                self._report(witness.name, size, refusal)
        return note + "".join(cosignatures), witnessed

    def _report(self, witness: str, size: int, refusal: WitnessRefused) -> None:
        if self.refused is None:
            return
        try:
            self.refused(witness, size, refusal)
        except Exception as error:  # noqa: BLE001 - the checkpoint is kept regardless
            log.error(
                "a witness's refusal of %s could not be recorded: %s",
                self.store.name,
                type(error).__name__,
            )

    def _cosign(self, witness: Witness, size: int, note: str) -> list[str]:
        seen = witness.latest(self.signer.origin)
        old = seen.size if seen else 0
        if old > size:
            raise WitnessRefused(409, f"the witness saw size {old}, the ledger has {size}", old)
        proof = self.store.consistency_proof(old, size) if old else []
        try:
            return witness.add_checkpoint(old, proof, note)
        except WitnessRefused as refusal:
            if refusal.status != 409 or refusal.known_size is None or refusal.known_size > size:
                raise
            known = refusal.known_size
            proof = self.store.consistency_proof(known, size) if known else []
            return witness.add_checkpoint(known, proof, note)

    def _query(
        self, *conditions: Any, order: Any, limit: int | None = None
    ) -> list[StoredCheckpoint]:
        table = self.store.tables.checkpoint
        statement = (
            select(table).where(table.c.ledger == self.store.name, *conditions).order_by(order)
        )
        if limit is not None:
            statement = statement.limit(limit)
        with read_transaction(self.store.engine) as connection:
            rows = connection.execute(statement).all()
        return [
            StoredCheckpoint(
                int(row.checkpoint_id),
                int(row.size),
                bytes(row.root),
                int(row.at_us),
                row.reason,
                row.note,
                (),
            )
            for row in rows
        ]

    def all(self) -> list[StoredCheckpoint]:
        return self._query(order=self.store.tables.checkpoint.c.checkpoint_id)

    def recent(self, limit: int) -> list[StoredCheckpoint]:
        """The latest ``limit`` checkpoints, newest first."""
        table = self.store.tables.checkpoint
        return self._query(order=table.c.checkpoint_id.desc(), limit=limit)

    def latest(self) -> StoredCheckpoint | None:
        table = self.store.tables.checkpoint
        found = self._query(order=table.c.checkpoint_id.desc(), limit=1)
        return found[0] if found else None

    def at_size(self, size: int) -> StoredCheckpoint | None:
        """The latest checkpoint signed at exactly ``size`` (one an incident's scope or an
        earlier answer cited), or None if none was signed at that size."""
        if not 0 <= size <= ROW_ID_MAX:
            # No tree has it, and the driver would overflow on the number (a 500 for a
            # size typed into ``?tree_size=``).
            return None
        table = self.store.tables.checkpoint
        found = self._query(table.c.size == size, order=table.c.checkpoint_id.desc(), limit=1)
        return found[0] if found else None

    def covering(self, size: int) -> StoredCheckpoint | None:
        """The latest checkpoint, if its tree holds the first ``size`` entries."""
        latest = self.latest()
        return latest if latest is not None and latest.size >= size else None


def encode_proof(proof: Sequence[bytes]) -> list[str]:
    return [base64.b64encode(item).decode() for item in proof]


class CheckpointSchedule:
    """Makes a checkpoint every ``seconds`` while the ledger grows (a daemon thread)."""

    def __init__(self, checkpoints: Sequence[Checkpoints], seconds: float) -> None:
        self.checkpoints = list(checkpoints)
        self.seconds = seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="checkpoints", daemon=True)

    def start(self) -> None:
        if self.seconds > 0:
            self._thread.start()

    def _run(self) -> None:
        # The first at start: anonymous readers are served the latest signed checkpoint
        # and never cause one, so a fresh server has one to serve from its first second.
        while True:
            for item in self.checkpoints:
                try:
                    latest = item.latest()
                    if latest is None or latest.size != item.store.head()[0]:
                        item.make("schedule")
                except Exception as error:
                    log.error(
                        "scheduled checkpoint of %s failed: %s", item.store.name, describe(error)
                    )
            if self._stop.wait(self.seconds):
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
