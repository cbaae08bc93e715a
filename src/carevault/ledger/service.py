"""One ledger, whole: its store, its group-commit writer, its checkpoints and witnesses."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from carevault.ledger.checkpoints import Checkpoints, CheckpointSigner
from carevault.ledger.store import LedgerStore
from carevault.ledger.tables import LedgerTables
from carevault.ledger.verify import VerifyReport, verify_ledger
from carevault.ledger.witness import Witness
from carevault.ledger.writer import LedgerWriter


@dataclass
class Ledger:
    store: LedgerStore
    writer: LedgerWriter
    checkpoints: Checkpoints

    @property
    def witnesses(self) -> list[Witness]:
        return self.checkpoints.witnesses

    def verify(self, progress: Callable[[int], None] | None = None) -> VerifyReport:
        origin = self.checkpoints.signer.origin
        views = [(witness.verifier_key(), witness.latest(origin)) for witness in self.witnesses]
        # A store of its own: nothing this process cached may stand in for what is stored.
        fresh = LedgerStore(self.store.engine, self.store.tables, self.store.name)
        return verify_ledger(
            fresh,
            self.checkpoints.all(),
            self.checkpoints.signer.vkey,
            views,
            progress=progress,
        )

    def prove_consistency(self, old: int, new: int) -> list[bytes]:
        """A consistency proof between two sizes the operator has signed for: ``new`` at
        most the latest signed checkpoint's size (never the live tree, which no one can
        hold the operator to, and whose size is not published until it is signed).
        ``OutOfRange`` names no size."""
        latest = self.checkpoints.latest()
        if latest is None:
            raise OutOfRange("no checkpoint has been signed yet")
        if not 0 <= old <= new <= latest.size:
            raise OutOfRange(
                "need 0 <= old <= new <= the size of the latest signed checkpoint"
                " (GET /audit/checkpoint)"
            )
        return self.store.consistency_proof(old, new)

    def close(self) -> None:
        self.writer.close()


class OutOfRange(ValueError):
    """A proof asked for sizes beyond what has been signed."""


def open_ledger(
    engine: Engine,
    tables: LedgerTables,
    name: str,
    signer: CheckpointSigner,
    witnesses: Sequence[Witness],
    now_us: Callable[[], int],
) -> Ledger:
    store = LedgerStore(engine, tables, name)
    return Ledger(store, LedgerWriter(store), Checkpoints(store, signer, witnesses, now_us))
