"""Bulk Data export through the gate: a batch of patients read as the exporting client.

The export worker (``carevault.export``) asks here for each batch; every record goes
through the same decisions as a read (the token's scopes, the access policy for the
client's role and clinics, containment, sensitive records withheld whole) and is opened
by the vault's one decrypting read. What comes back carries one audit entry per patient
(``fhir:resource:export``, counted by the detectors and the scope engine like any read)
that the worker commits in the transaction that records the batch as done: so a patient
is in the ledger exactly when their records are in the job's files.

The release budget is not applied: an export runs only after privacy officers approved
it, which is the stronger guard, and the budget would stop it part-way.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from carevault.containment.state import ContainmentActive
from carevault.domain.categories import DataCategory
from carevault.domain.policy import Decision
from carevault.gate.core import CLINIC_LOCKED, KEY_LOCKDOWN, PHI_OFFLINE, Caller, Gate, _Attempt
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.vault.opening import open_sealed
from carevault.vault.records import Opened, Sealed

#: Patients whose registrations are looked up together before their records are decided.
_DECIDE_CHUNK = 50


@dataclass(frozen=True)
class ExportedBatch:
    """Records cut to what the caller may see, and the batch's audit entries (not yet
    recorded: the caller commits them with its own bookkeeping)."""

    records: list[Opened]
    events: list[AuditEvent]


def held_by_containment(gate: Gate) -> str | None:
    """Why exports must wait now (key lockdown, patient data offline), or None."""
    state = gate._state()
    if state.key_lockdown:
        return KEY_LOCKDOWN
    if state.phi_offline:
        return PHI_OFFLINE
    return None


def locked_for(gate: Gate, clinic_ids: Collection[str]) -> str | None:
    """Why files holding patients of ``clinic_ids`` must not leave now (one of them is
    locked by containment), or None."""
    return CLINIC_LOCKED if gate._state().locked_clinics & set(clinic_ids) else None


def export_patients(
    gate: Gate,
    caller: Caller,
    patients: Sequence[tuple[str, str]],
    types: Collection[str] | None,
    since_us: int | None,
    job_id: str,
) -> ExportedBatch:
    """The records of ``patients`` ((patient id, pseudonym) pairs) that ``caller`` may
    read, of ``types`` (None: all), changed after ``since_us``; one audit entry per
    patient with at least one record in the batch."""
    held = held_by_containment(gate)
    if held is not None:
        raise ContainmentActive(held)
    attempt = _Attempt(caller, Tag.FHIR_EXPORT, "Patient", None, detail={"job": job_id})
    located = gate.vault.locate_compartments([p for _, p in patients], types, since_us)
    cut = _read(gate, caller, located)
    by_patient: dict[str, tuple[set[DataCategory], dict[str, int], Decision]] = {}
    for item, decision, present in cut:
        pseudonym = item.head.patient_pseudonym
        assert pseudonym is not None  # noqa: S101 - a compartment's records name their patient
        categories, counts, _ = by_patient.setdefault(pseudonym, (set(), {}, decision))
        categories.update(present)
        counts[item.head.resource_type] = counts.get(item.head.resource_type, 0) + 1
    ids = {pseudonym: patient_id for patient_id, pseudonym in patients}
    events = [
        gate._event(
            attempt,
            Outcome.SUCCESS,
            pseudonym=pseudonym,
            resource_id=ids.get(pseudonym),
            categories=frozenset(categories),
            decision=decision,
            reason="bulk export approved by privacy officers",
            detail={"exported": dict(sorted(counts.items()))},
        )
        for pseudonym, (categories, counts, decision) in by_patient.items()
    ]
    return ExportedBatch([item for item, _, _ in cut], events)


def export_directory(
    gate: Gate, caller: Caller, types: Collection[str], since_us: int | None, job_id: str
) -> ExportedBatch:
    """Directory records (clinics, practitioners, locations: no one's patient data) of
    ``types`` for a system-level export; one audit entry for them all."""
    held = held_by_containment(gate)
    if held is not None:
        raise ContainmentActive(held)
    attempt = _Attempt(caller, Tag.FHIR_EXPORT, None, None, detail={"job": job_id})
    cut = _read(gate, caller, gate.vault.locate_directory(types, since_us))
    counts: dict[str, int] = {}
    for item, _, _ in cut:
        counts[item.head.resource_type] = counts.get(item.head.resource_type, 0) + 1
    events = (
        [
            gate._event(
                attempt,
                Outcome.SUCCESS,
                reason="bulk export approved by privacy officers",
                detail={"exported": dict(sorted(counts.items()))},
            )
        ]
        if cut
        else []
    )
    return ExportedBatch([item for item, _, _ in cut], events)


def _read(
    gate: Gate, caller: Caller, located: Sequence[Sealed]
) -> list[tuple[Opened, Decision, frozenset[DataCategory]]]:
    keys = gate.vault.keys
    if keys is not None and located:
        # A patient erased (their data key shredded) is no longer anyone's to export.
        gone = keys.shredded({item.key_id for item in located if item.key_id})
        if gone:
            located = [item for item in located if item.key_id not in gone]
    # The facts the policy decides on are the patient's, the clinic's and the type's: one
    # decision for each of them, not one per record (as a page of search results); the
    # patients' registrations are looked up together, a chunk at a time (the lookup's
    # cache is short-lived).
    samples: dict[str | None, dict[tuple[str | None, str], Sealed]] = {}
    for item in located:
        head = item.head
        samples.setdefault(head.patient_pseudonym, {}).setdefault(
            (head.clinic_id, head.resource_type), item
        )
    decisions: dict[tuple[str | None, str | None, str], Decision | None] = {}
    patients = list(samples)
    for start in range(0, len(patients), _DECIDE_CHUNK):
        chunk = patients[start : start + _DECIDE_CHUNK]
        if gate.access is not None and caller.actor is not None:
            gate.access.registrations.prefetch([p for p in chunk if p is not None])
        for pseudonym in chunk:
            for (clinic_id, resource_type), sample in samples[pseudonym].items():
                decisions[(pseudonym, clinic_id, resource_type)] = gate._may_read(caller, sample)
    decided: list[tuple[Sealed, Decision]] = []
    for item in located:
        decision = decisions[
            (item.head.patient_pseudonym, item.head.clinic_id, item.head.resource_type)
        ]
        if decision is not None:
            decided.append((item, decision))
    opened = open_sealed(
        gate.vault,
        [item for item, _ in decided],
        principal=caller.principal,
        purpose=caller.purpose,
    )
    return gate._cut(list(zip(opened, [d for _, d in decided], strict=True)))
