"""Reading the patients of a batch through the gate, as the notifying system.

One gate search by ``_id`` per batch: the gate opens the batch's records with one
call to the key service (one unwrap-log write) and records one ledger entry per
patient released, naming the categories shown, exactly as a read of each would. A
patient who is gone (deleted, or not on record) is absent from the answer.

A patient whose Patient record a compromised principal wrote in the incident's window
(the scope's ``changed``: updated, deleted, or written again after a deletion) is
written to at details the attacker did not set: an attacker who rewrote a phone number
or an email address must not receive the patient's notice and its verification code,
and one who deleted the record must not keep the patient from being told. The ledger
entries the scope cites name the versions they wrote; the record's history (one more
ledger entry, as any read) is replayed oldest first (``replay``): a version the attacker
wrote changes nothing, and a version someone else wrote applies only the list entries
and values it changed (a desk that changes the phone re-saves the attacker's email
unchanged: that email is still not taken). With no version to take details from, the
patient has no way to be reached, and is listed so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from carevault.fhir import jsonio
from carevault.fhir.query import SearchQuery
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Gate
from carevault.incidents.rewrites import replay, written_over
from carevault.ledger.store import LedgerStore
from carevault.notify.audit import NOTIFY_CALLER
from carevault.notify.contacts import Held, Recipient, contact_of, recipient_of
from carevault.notify.scope import Exposure
from carevault.vault.records import Erased, Gone, NotFound, Opened

#: Patients per gate search (a batch larger than this is read in several).
SEARCH_PAGE = 500


@dataclass(frozen=True)
class Person:
    """Who receives a person's one notice: the recipient and pseudonym of the record it
    goes out from, and the pseudonyms of every record of theirs it covers."""

    recipient: Recipient
    pseudonym: str | None
    covers: tuple[str, ...]


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
        return {
            patient_id: (held.recipient, held.pseudonym)
            for patient_id, held in self.records(patient_ids, changed).items()
        }

    def people(
        self, notices: Sequence[Exposure], changed: Mapping[str, Exposure] | None = None
    ) -> dict[str, Person]:
        """Each notice's person (``Scope.notices``, by its ``patient_id``) → who receives
        it, from the record ``contacts.contact_of`` chooses among the records it covers
        that are still on record; absent if none is."""
        held = self.records([p for notice in notices for p in notice.covers], changed)
        found: dict[str, Person] = {}
        for notice in notices:
            live = {p: held[p] for p in notice.covers if p in held}
            if not live:
                continue
            _, chosen = contact_of(live)
            covers = tuple(sorted({h.pseudonym for h in live.values() if h.pseudonym}))
            found[notice.patient_id] = Person(chosen.recipient, chosen.pseudonym, covers)
        return found

    def records(
        self, patient_ids: Sequence[str], changed: Mapping[str, Exposure] | None = None
    ) -> dict[str, Held]:
        """patient id → the record as a notice may use it (``contacts.Held``); absent if
        the patient is gone. ``changed``: see ``recipients``."""
        patient = RESOURCE_TYPES["Patient"]
        today = self.today()
        # A scope names a patient it could not resolve by pseudonym only: no record to read.
        wanted = list(dict.fromkeys(p for p in patient_ids if not p.startswith("pseudonym:")))
        found: dict[str, Held] = {}
        for start in range(0, len(wanted), SEARCH_PAGE):
            page = wanted[start : start + SEARCH_PAGE]
            query = SearchQuery(resource_type=patient, ids=[tuple(page)], count=len(page))
            opened, _ = self.gate.search(NOTIFY_CALLER, query)
            for item in opened:
                if item.body is None or item.head.deleted:
                    continue
                patient_id = item.head.resource_id
                found[patient_id] = Held(
                    recipient_of(patient_id, jsonio.load(item.body), today),
                    item.head.patient_pseudonym,
                    item.head.last_updated_us,
                )
        for patient_id in wanted:
            change = (changed or {}).get(patient_id)
            written, made = self._written_by_them(change) if change is not None else (set(), False)
            if written:
                trusted = self._trusted(patient_id, written, today)
                if trusted is not None:
                    found[patient_id] = trusted
            if made and patient_id in found:
                # Their record from its first version: it may speak for whoever they
                # made it for, never for a person who has a record of their own
                # (``contacts.contact_of``; review of one notice per person).
                found[patient_id] = replace(found[patient_id], made_by_them=True)
        return found

    def _written_by_them(self, change: Exposure) -> tuple[set[int], bool]:
        """What the writes ``change`` cites made of the patient's Patient record
        (``incidents.rewrites.written_over``)."""
        return written_over(self.ledger, change.patient_id, change.evidence)

    def _trusted(self, patient_id: str, written: set[int], today: date) -> Held | None:
        """The recipient of the record's history replayed without the versions in
        ``written`` (see the module's docstring); None if the history cannot be read
        (erased since, or not there: the patient is as the search found them)."""
        try:
            versions = self.gate.history(
                NOTIFY_CALLER, RESOURCE_TYPES["Patient"], patient_id
            ).versions
        except (NotFound, Gone, Erased):
            return None
        if not versions:
            return None
        ordered = sorted(versions, key=lambda item: item.head.version_id)
        latest = ordered[-1]
        if latest.head.deleted and latest.head.version_id not in written:
            return None  # deleted by someone else: gone, as the search said
        replayed = replay(
            [(item.head.version_id, _body(item)) for item in ordered],
            frozenset(written),
            LISTS,
            SINGLES,
        )
        recipient = recipient_of(patient_id, replayed, today)
        # When the details were last given: the last version someone else wrote (the
        # attacker's writes make the record look freshly updated).
        trusted = [item for item in ordered if item.head.version_id not in written]
        updated_us = trusted[-1].head.last_updated_us if trusted else 0
        return Held(
            replace(recipient, untrusted_versions=tuple(sorted(written))),
            latest.head.patient_pseudonym,
            updated_us,
        )


#: What a notice takes from a Patient record (``contacts.recipient_of``): the lists,
#: replayed entry by entry (one telecom entry is an email, the next a phone) ...
LISTS = ("name", "telecom", "address", "contact", "communication")
#: ... and the single values, the ``deceased[x]`` choice as one.
SINGLES: tuple[tuple[str, ...], ...] = (("birthDate",), ("deceasedBoolean", "deceasedDateTime"))


def _body(item: Opened) -> dict[str, Any] | None:
    if item.head.deleted or item.body is None:
        return None
    loaded: dict[str, Any] = jsonio.load(item.body)
    return loaded
