"""An alert's evidence: the audit-ledger entries of its subject between the first and
the last position the alert cites, each with its inclusion proof against a signed
checkpoint that holds them, checked here before it is shown (and downloadable, so
anyone can check it again with the standalone verifier)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from carevault.detect.alerts import Alert
from carevault.ledger.audit import AuditQuery, matching
from carevault.ledger.checkpoints import StoredCheckpoint
from carevault.ledger.events import AuditEvent
from carevault.ledger.service import Ledger
from carevault.ledger.verifier import leaf_hash, verify_inclusion

#: The console shows at most this many entries of one alert; the download has them all
#: up to ``MOST_DOWNLOADED``.
MOST_SHOWN = 50
MOST_DOWNLOADED = 5000


@dataclass(frozen=True)
class EvidenceLine:
    seq: int
    event: AuditEvent
    entry: str
    proof: tuple[str, ...]


@dataclass(frozen=True)
class Evidence:
    lines: tuple[EvidenceLine, ...]
    checkpoint: StoredCheckpoint | None
    #: More entries than shown lie in the alert's range.
    more: bool

    def as_json(self, alert: Alert) -> dict[str, Any]:
        return {
            "alert": alert.alert_id,
            "principal": alert.principal,
            "first_position": alert.first_position,
            "last_position": alert.last_position,
            "checkpoint": self.checkpoint.note if self.checkpoint else None,
            "tree_size": self.checkpoint.size if self.checkpoint else None,
            "entries": [
                {"seq": line.seq, "entry": line.entry, "proof": list(line.proof)}
                for line in self.lines
            ],
        }


def _checkpoint(ledger: Ledger, last: int, alert_id: int) -> StoredCheckpoint:
    """A signed checkpoint whose tree holds position ``last``; one is made if none does."""
    found = ledger.checkpoints.covering(last + 1)
    return found or ledger.checkpoints.make(f"alert {alert_id} evidence")


def alert_evidence(ledger: Ledger, alert: Alert, limit: int = MOST_SHOWN) -> Evidence:
    """The entries of ``alert``'s principal from its first to its last position, each
    proved included in a signed checkpoint (``VerificationError`` if one is not)."""
    principal = alert.principal
    first, last = alert.first_position, alert.last_position
    if principal is None or first is None or last is None:
        return Evidence((), None, False)
    query = AuditQuery(principal=principal, after_seq=first - 1, count=limit + 1)
    found = [item for item in matching(ledger, query) if item[0] <= last]
    checkpoint = _checkpoint(ledger, last, alert.alert_id)
    lines = []
    for seq, event, data in found[:limit]:
        proof = ledger.store.inclusion_proof(seq, checkpoint.size)
        verify_inclusion(leaf_hash(data), seq, checkpoint.size, proof, checkpoint.root)
        lines.append(
            EvidenceLine(
                seq,
                event,
                base64.b64encode(data).decode(),
                tuple(base64.b64encode(item).decode() for item in proof),
            )
        )
    return Evidence(tuple(lines), checkpoint, len(found) > limit)
