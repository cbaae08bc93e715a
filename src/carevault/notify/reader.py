"""Reading the patients of a batch through the gate, as the notifying system.

One gate search by ``_id`` per batch: the gate opens the batch's records with one
call to the key service (one unwrap-log write) and records one ledger entry per
patient released, naming the categories shown, exactly as a read of each would. A
patient who is gone (deleted, or not on record) is absent from the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

from carevault.fhir import jsonio
from carevault.fhir.query import SearchQuery
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Gate
from carevault.notify.audit import NOTIFY_CALLER
from carevault.notify.contacts import Recipient, recipient_of

#: Patients per gate search (a batch larger than this is read in several).
SEARCH_PAGE = 500


@dataclass
class Reader:
    """Reads patients through the gate as the notifying system (one ledger entry each)."""

    gate: Gate
    today: Callable[[], date]

    def recipients(self, patient_ids: Sequence[str]) -> dict[str, tuple[Recipient, str | None]]:
        """patient id → (recipient, pseudonym); absent if the patient is gone."""
        patient = RESOURCE_TYPES["Patient"]
        today = self.today()
        # A scope names a patient it could not resolve by pseudonym only: no record to read.
        wanted = list(dict.fromkeys(p for p in patient_ids if not p.startswith("pseudonym:")))
        found: dict[str, tuple[Recipient, str | None]] = {}
        for start in range(0, len(wanted), SEARCH_PAGE):
            page = wanted[start : start + SEARCH_PAGE]
            query = SearchQuery(resource_type=patient, ids=[tuple(page)], count=len(page))
            opened, _ = self.gate.search(NOTIFY_CALLER, query)
            for item in opened:
                if item.body is None or item.head.deleted:
                    continue
                patient_id = item.head.resource_id
                found[patient_id] = (
                    recipient_of(patient_id, jsonio.load(item.body), today),
                    item.head.patient_pseudonym,
                )
        return found
