"""Reading the patients of a batch through the gate, as the notifying system.

One gate search by ``_id`` per batch: the gate opens the batch's records with one
call to the key service (one unwrap-log write) and records one ledger entry per
patient released, naming the categories shown, exactly as a read of each would. A
patient who is gone (deleted, or not on record) is absent from the answer.

A patient whose Patient record a compromised principal updated or deleted in the
incident's window (the scope's ``changed``) is written to at the details held before:
an attacker who rewrote a phone number or an email address must not receive the
patient's notice and its verification code, and one who deleted the record must not
keep the patient from being told. The ledger entries the scope cites name the versions
they wrote; the record's history (one more ledger entry, as any read) gives the version
before the first of them, unless someone else has written the record since.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from carevault.fhir import jsonio
from carevault.fhir.query import SearchQuery
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Gate
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.store import LedgerStore
from carevault.notify.audit import NOTIFY_CALLER
from carevault.notify.contacts import Recipient, recipient_of
from carevault.notify.scope import Exposure
from carevault.vault.records import Gone, NotFound, Opened

#: Patients per gate search (a batch larger than this is read in several).
SEARCH_PAGE = 500


@dataclass
class Reader:
    """Reads patients through the gate as the notifying system (one ledger entry each)."""

    gate: Gate
    today: Callable[[], date]
    #: The audit ledger, where the changes a scope cites are read.
    ledger: LedgerStore

    def recipients(
        self, patient_ids: Sequence[str], changed: Mapping[str, Exposure] | None = None
    ) -> dict[str, tuple[Recipient, str | None]]:
        """patient id → (recipient, pseudonym); absent if the patient is gone.
        ``changed``: the scope's patients whose records a compromised principal changed
        (see the module's docstring)."""
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
        for patient_id in wanted:
            change = (changed or {}).get(patient_id)
            written = self._written_by_them(change) if change is not None else set()
            if written:
                trusted = self._held_before(patient_id, written)
                if trusted is not None:
                    found[patient_id] = trusted
        return found

    def _written_by_them(self, change: Exposure) -> set[int]:
        """The versions of the patient's Patient record that the changes ``change`` cites
        wrote (a deletion too is a version); read from the entries themselves."""
        versions: set[int] = set()
        for seq in change.evidence:
            data = self.ledger.entry(seq)
            if data is None:
                continue
            event = AuditEvent.from_canonical(data, seq=seq)
            version = event.detail.get("version")
            if (
                event.tag in (Tag.FHIR_UPDATE, Tag.FHIR_DELETE)
                and event.outcome == Outcome.SUCCESS
                and event.resource_type == "Patient"
                and event.resource_id == change.patient_id
                and isinstance(version, int)
            ):
                versions.add(version)
        return versions

    def _held_before(
        self, patient_id: str, written: set[int]
    ) -> tuple[Recipient, str | None] | None:
        """The recipient of the version before the first of ``written``; None when the
        record's current version is not one of them (someone else wrote it since) or no
        earlier version can be read."""
        try:
            versions, _ = self.gate.history(NOTIFY_CALLER, RESOURCE_TYPES["Patient"], patient_id)
        except (NotFound, Gone):
            return None  # erased since: nothing held before either
        current = max((item.head.version_id for item in versions), default=None)
        if current is None or current not in written:
            return None
        earlier: list[Opened] = [
            item
            for item in versions
            if item.head.version_id < min(written)
            and not item.head.deleted
            and item.body is not None
        ]
        if not earlier:
            return None
        kept = max(earlier, key=lambda item: item.head.version_id)
        assert kept.body is not None  # noqa: S101 - filtered above
        since = datetime.fromtimestamp(kept.head.last_updated_us / 1_000_000, UTC)
        recipient = recipient_of(patient_id, jsonio.load(kept.body), self.today())
        return replace(recipient, held_since=since), kept.head.patient_pseudonym
