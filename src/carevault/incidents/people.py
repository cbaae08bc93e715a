"""People, not records: Patient records with the same HKID blind index are one person.

The blind index of an HKID is the token the vault stores for the Patient's identifier
(``identifier`` search, the HKID system's term). To compute it the scope needs the HKID
of each affected record, so it reads those Patient records through the gate, as the
system with a purpose of its own: every such read is in the audit ledger, and the number
itself never leaves this function (only the token is compared). Only the notifiable tiers
(confirmed, decrypted) are deduplicated this way; the others count records.

A scope is run again and again while an incident is open (each Recompute, each
``incident scope``, each notice job), and reading every affected record each time took
seconds: one decryption and one durable ledger entry per patient. So the token found for a Patient
record is remembered per process, keyed by the record's id and version: a new version
(an edited HKID, a deletion) is read again, a record whose data key was shredded is
never matched from memory, and while containment keeps patient data offline or the keys
locked down nothing is taken from memory (the scope counts records, as before). What is
remembered is the blind token (an HMAC under the index key), never the number.

A record whose Patient record a compromised principal wrote over in the window (the
scope's ``changed``: an update, a deletion, the record written again) is grouped by the
HKID it holds without their versions: its history is read (one more ledger entry) and
its identifiers replayed oldest first, a version they wrote changing nothing and one
someone else wrote applying only the entries it added or removed. Otherwise an attacker
who gave a victim another patient's number (both patients theirs to read, so no twin
refusal) made the two one person, told in one notice sent to one of them; and one who
gave a victim a new number split them from their other records (adversary round 49).
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from sqlalchemy import select

from carevault.containment.state import ContainmentActive
from carevault.db import read_transaction
from carevault.fhir.indexing import hkid_terms
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller
from carevault.gate.core import AccessDenied
from carevault.incidents.rewrites import replay, written_over
from carevault.vault.records import Erased, Gone, NotFound
from carevault.vault.tables import resource_head

if TYPE_CHECKING:
    from carevault.bootstrap import Services

READER = Caller(principal="system:incident-scope", purpose="HOPERAT")
#: Remembered tokens per process before the memory starts afresh.
MOST_REMEMBERED = 200_000

#: (Patient id, version) → HKID blind token (None: the record has no HKID), per engine.
_remembered: weakref.WeakKeyDictionary[object, dict[tuple[str, int], bytes | None]] = (
    weakref.WeakKeyDictionary()
)
_remembering = threading.Lock()


def _hkid_token(services: Services, patient_id: str) -> tuple[bool, bytes | None]:
    """(read, token): ``read`` is False when the record could not be read."""
    try:
        opened = services.gate.read(READER, RESOURCE_TYPES["Patient"], patient_id)
    except (Gone, NotFound, Erased, AccessDenied, LookupError):
        return False, None  # erased, deleted or not there: counted on its own
    if opened.body is None:
        return False, None
    terms = hkid_terms(json.loads(opened.body))
    if not terms:
        return True, None
    return True, services.vault.token("Patient", "identifier", terms[0])


def _current(services: Services, patient_ids: list[str]) -> dict[str, tuple[int, str | None]]:
    """Version and pseudonym of each live (not deleted) Patient record among ``patient_ids``."""
    head = resource_head.c
    found: dict[str, tuple[int, str | None]] = {}
    with read_transaction(services.engine) as connection:
        for start in range(0, len(patient_ids), 500):
            rows = connection.execute(
                select(head.resource_id, head.version_id, head.patient_pseudonym).where(
                    head.resource_type == "Patient",
                    head.resource_id.in_(patient_ids[start : start + 500]),
                    head.deleted.is_(False),
                )
            ).all()
            found.update(
                {str(r.resource_id): (int(r.version_id), r.patient_pseudonym) for r in rows}
            )
    return found


def _usable(services: Services, patient_ids: list[str]) -> dict[str, tuple[str, int]]:
    """The cache key of each record whose remembered token may stand in for a read."""
    state = services.containment.current()
    if state.phi_offline or state.key_lockdown or state.locked_clinics or services.keys is None:
        return {}
    current = _current(services, patient_ids)
    shredded = services.keys.shredded(
        {pseudonym for _, pseudonym in current.values() if pseudonym is not None}
    )
    return {
        patient_id: (patient_id, version)
        for patient_id, (version, pseudonym) in current.items()
        if pseudonym is None or pseudonym not in shredded
    }


def _trusted_token(
    services: Services, patient_id: str, written: set[int]
) -> tuple[bool, bytes | None]:
    """(read, token) of the record's HKID as it stands without the versions in
    ``written`` (``rewrites.replay``; see the module's docstring)."""
    try:
        versions = services.gate.history(READER, RESOURCE_TYPES["Patient"], patient_id).versions
    except (Gone, NotFound, Erased, AccessDenied, LookupError):
        return False, None
    ordered = sorted(versions, key=lambda item: item.head.version_id)
    replayed = replay(
        [
            (item.head.version_id, None if item.head.deleted or item.body is None
             else json.loads(item.body))
            for item in ordered
        ],
        frozenset(written),
        ("identifier",),
    )  # fmt: skip
    terms = hkid_terms(replayed)
    if not terms:
        return True, None
    return True, services.vault.token("Patient", "identifier", terms[0])


def persons(
    services: Services,
    patient_ids: Mapping[str, str],
    changed: Mapping[str, Iterable[int]] | None = None,
) -> dict[str, str]:
    """Each Patient id's person: the smallest Patient id sharing its HKID blind index.
    ``changed``: Patient id → the ledger positions of a compromised principal's writes
    to that patient's records (the scope's ``changed`` lines' evidence)."""
    by_token: dict[bytes, list[str]] = {}
    found = {patient_id: patient_id for patient_id in patient_ids.values()}
    ordered = sorted(found)
    rewritten = {
        patient_id: written
        for patient_id, evidence in (changed or {}).items()
        if patient_id in found
        and (written := written_over(services.audit_ledger.store, patient_id, evidence)[0])
    }
    usable = {
        patient_id: key
        for patient_id, key in _usable(services, ordered).items()
        if patient_id not in rewritten
    }
    with _remembering:
        memory = _remembered.setdefault(services.engine, {})
        if len(memory) > MOST_REMEMBERED:
            memory.clear()
        known = {key: memory[key] for key in usable.values() if key in memory}
    learned: dict[tuple[str, int], bytes | None] = {}
    for patient_id in ordered:
        key = usable.get(patient_id)
        if key is not None and key in known:
            token = known[key]
        else:
            try:
                if patient_id in rewritten:
                    read, token = _trusted_token(services, patient_id, rewritten[patient_id])
                else:
                    read, token = _hkid_token(services, patient_id)
            except ContainmentActive:
                # Patient data is offline or keys are locked down: the scope still runs, and
                # counts records as people until the containment is released.
                break
            if read and key is not None:
                learned[key] = token
        if token is not None:
            by_token.setdefault(token, []).append(patient_id)
    with _remembering:
        _remembered.setdefault(services.engine, {}).update(learned)
    for same in by_token.values():
        for patient_id in same:
            found[patient_id] = min(same)
    return found
