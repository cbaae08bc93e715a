"""Bulk Data export through the gate: a batch of patients read as the exporting client.

The export worker (``carevault.export``) asks here for each batch; every record goes
through the same decisions as a read (the token's scopes, the access policy for the
client's role and clinics, containment, sensitive records withheld whole) and is opened
by the vault's one decrypting read. What comes back carries one audit entry per patient
(``fhir:resource:export``, counted by the detectors and the scope engine like any read)
that the worker commits in the transaction that records the batch as done: so a patient
is in the ledger exactly when their records are in the job's files.

An export ``_since`` a time also lists the records it would have returned that were
deleted since (Bulk Data v2, the manifest's ``deleted``). A deleted record is judged
exactly as a live one is, on the version its deletion ended (as ``Gate.history`` judges
one): the same scopes and policy, an erased patient's left out, and one withheld whole
(an HIV diagnosis, for a role that may not see it) is not listed, since its type and id
would tell that it existed. A listed deletion is a disclosure about its patient, so it
is counted in that patient's one entry of the batch (``_entries``).

The release budget is not applied: an export runs only after privacy officers approved
it, which is the stronger guard, and the budget would stop it part-way.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from carevault.containment.state import ContainmentActive
from carevault.domain.categories import DataCategory
from carevault.domain.policy import Decision
from carevault.gate.core import (
    CLINIC_LOCKED,
    KEY_LOCKDOWN,
    PHI_OFFLINE,
    Caller,
    Gate,
    _Attempt,
    caller_event,
)
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.vault.opening import open_sealed
from carevault.vault.records import Head, Opened, Sealed

#: Patients whose registrations are looked up together before their records are decided.
_DECIDE_CHUNK = 50


@dataclass(frozen=True)
class ExportedBatch:
    """Records cut to what the caller may see, and the batch's audit entries (not yet
    recorded: the caller commits them with its own bookkeeping)."""

    records: list[Opened]
    events: list[AuditEvent]
    #: The deletions to list in the manifest's ``deleted`` (each deletion's head: the
    #: record's type and id, and when it was deleted); empty without ``_since``.
    deleted: list[Head] = field(default_factory=list)
    #: Whose records are in which of the batch's files: what a download of each file
    #: releases (``file_released``), kept sealed beside the files.
    released: list[Released] = field(default_factory=list)


@dataclass(frozen=True)
class Released:
    """One patient of a batch: their Patient id, and per resource type of the batch's
    files, the categories their records in it showed (a ``deleted`` file's type shows
    none: the type and id of a deletion, no content)."""

    pseudonym: str
    patient_id: str | None
    shown: dict[str, frozenset[DataCategory]]

    def as_json(self) -> dict[str, Any]:
        return {
            "pseudonym": self.pseudonym,
            "patient": self.patient_id,
            "shown": {kind: sorted(found) for kind, found in sorted(self.shown.items())},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Released:
        return cls(
            str(data["pseudonym"]),
            None if data.get("patient") is None else str(data["patient"]),
            {
                str(kind): frozenset(DataCategory(c) for c in found)
                for kind, found in data["shown"].items()
            },
        )


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
    deleted_until_us: int | None = None,
    deleted_type: str = "Bundle",
) -> ExportedBatch:
    """The records of ``patients`` ((patient id, pseudonym) pairs) that ``caller`` may
    read, of ``types`` (None: all), changed after ``since_us``; with ``since_us`` and
    ``deleted_until_us`` (the job's transactionTime), the records of theirs that the
    caller may read deleted in between. One audit entry per patient with at least one
    record or deletion in the batch."""
    held = held_by_containment(gate)
    if held is not None:
        raise ContainmentActive(held)
    attempt = _Attempt(caller, Tag.FHIR_EXPORT, "Patient", None, detail={"job": job_id})
    pseudonyms = [p for _, p in patients]
    cut = _read(gate, caller, gate.vault.locate_compartments(pseudonyms, types, since_us))
    deleted: list[Head] = []
    if since_us is not None and deleted_until_us is not None:
        deleted = _deletions(
            gate,
            caller,
            gate.vault.locate_compartment_deletions(pseudonyms, types, since_us, deleted_until_us),
        )
    ids = {pseudonym: patient_id for patient_id, pseudonym in patients}
    return ExportedBatch(
        [item for item, _, _ in cut],
        _entries(gate, attempt, cut, deleted, ids),
        deleted,
        _released(cut, deleted, ids, deleted_type),
    )


def _released(
    cut: Sequence[tuple[Opened, Decision, frozenset[DataCategory]]],
    deleted: Sequence[Head],
    ids: dict[str, str],
    deleted_type: str,
) -> list[Released]:
    """Per patient of the batch, the categories each of its files shows of them."""
    shown: dict[str, dict[str, set[DataCategory]]] = {}
    for item, _, present in cut:
        pseudonym = item.head.patient_pseudonym
        assert pseudonym is not None  # noqa: S101 - a compartment's records name their patient
        shown.setdefault(pseudonym, {}).setdefault(item.head.resource_type, set()).update(present)
    for head in deleted:
        pseudonym = head.patient_pseudonym
        assert pseudonym is not None  # noqa: S101 - as above
        shown.setdefault(pseudonym, {}).setdefault(deleted_type, set())
    return [
        Released(pseudonym, ids.get(pseudonym), {kind: frozenset(c) for kind, c in by_type.items()})
        for pseudonym, by_type in shown.items()
    ]


def file_released(
    caller: Caller,
    released: Sequence[Released],
    resource_type: str,
    at_us: int,
    detail: dict[str, Any],
) -> list[AuditEvent]:
    """The entries of one download of a file of ``resource_type``: one
    ``bulk:export:file-released`` per patient whose records (or deletions) it holds,
    naming them and what the file shows of them, made as the downloading caller (its
    session, address and client), so that an incident declared after the file was
    written and before it was fetched (a client's secret stolen in between) lists them,
    as does their access report."""
    return [
        caller_event(
            caller,
            Tag.EXPORT_FILE_RELEASED,
            Outcome.SUCCESS,
            at_us,
            resource_type="Patient",
            resource_id=patient.patient_id,
            patient_pseudonym=patient.pseudonym,
            categories=tuple(sorted(patient.shown[resource_type])),
            reason="bulk export file downloaded",
            detail=detail,
        )
        for patient in released
        if resource_type in patient.shown
    ]


def _entries(
    gate: Gate,
    attempt: _Attempt,
    cut: Sequence[tuple[Opened, Decision, frozenset[DataCategory]]],
    deleted: Sequence[Head],
    ids: dict[str, str],
) -> list[AuditEvent]:
    """One ``fhir:resource:export`` entry per patient: the categories their records
    showed and the number of each type, and of their deletions listed.

    A deletion listed tells the client that the patient had a record of that type and
    id: it is counted in the same entry as the patient's records rather than in one of
    its own, so that the detectors and an incident's scope (which count these entries
    as releases, per patient) see a patient whose only news was a deletion as released
    to the client, and a patient with both once, not twice. It adds no category, as a
    deletion in a history Bundle adds none: what it shows is the type and id, no
    content (the client's earlier copy was in the ledger when it left)."""
    by_patient: dict[str, tuple[set[DataCategory], dict[str, int], dict[str, int]]] = {}
    decisions: dict[str, Decision] = {}
    for item, decision, present in cut:
        pseudonym = item.head.patient_pseudonym
        assert pseudonym is not None  # noqa: S101 - a compartment's records name their patient
        categories, counts, _ = by_patient.setdefault(pseudonym, (set(), {}, {}))
        decisions.setdefault(pseudonym, decision)
        categories.update(present)
        counts[item.head.resource_type] = counts.get(item.head.resource_type, 0) + 1
    for head in deleted:
        pseudonym = head.patient_pseudonym
        assert pseudonym is not None  # noqa: S101 - as above
        gone = by_patient.setdefault(pseudonym, (set(), {}, {}))[2]
        gone[head.resource_type] = gone.get(head.resource_type, 0) + 1
    return [
        gate._event(
            attempt,
            Outcome.SUCCESS,
            pseudonym=pseudonym,
            resource_id=ids.get(pseudonym),
            categories=frozenset(categories),
            decision=decisions.get(pseudonym),
            reason="bulk export approved by privacy officers",
            detail=_counts(counts, gone),
        )
        for pseudonym, (categories, counts, gone) in by_patient.items()
    ]


def _counts(exported: dict[str, int], deleted: dict[str, int]) -> dict[str, dict[str, int]]:
    """An entry's counts by type: exported (always, as before deletions were listed),
    and deleted where there are any."""
    detail = {"exported": dict(sorted(exported.items()))}
    if deleted:
        detail["deleted"] = dict(sorted(deleted.items()))
    return detail


def export_directory(
    gate: Gate,
    caller: Caller,
    types: Collection[str],
    since_us: int | None,
    job_id: str,
    deleted_until_us: int | None = None,
) -> ExportedBatch:
    """Directory records (clinics, practitioners, locations: no one's patient data) of
    ``types`` for a system-level export, and (as ``export_patients``) those deleted
    since ``since_us``; one audit entry for them all."""
    held = held_by_containment(gate)
    if held is not None:
        raise ContainmentActive(held)
    attempt = _Attempt(caller, Tag.FHIR_EXPORT, None, None, detail={"job": job_id})
    cut = _read(gate, caller, gate.vault.locate_directory(types, since_us))
    deleted: list[Head] = []
    if since_us is not None and deleted_until_us is not None:
        deleted = _deletions(
            gate, caller, gate.vault.locate_directory_deletions(types, since_us, deleted_until_us)
        )
    counts: dict[str, int] = {}
    for item, _, _ in cut:
        counts[item.head.resource_type] = counts.get(item.head.resource_type, 0) + 1
    gone: dict[str, int] = {}
    for head in deleted:
        gone[head.resource_type] = gone.get(head.resource_type, 0) + 1
    events = (
        [
            gate._event(
                attempt,
                Outcome.SUCCESS,
                reason="bulk export approved by privacy officers",
                detail=_counts(counts, gone),
            )
        ]
        if cut or deleted
        else []
    )
    return ExportedBatch([item for item, _, _ in cut], events, deleted)


def _deletions(gate: Gate, caller: Caller, located: Sequence[tuple[Head, Sealed]]) -> list[Head]:
    """The deletions among ``located`` ((deletion, version it ended) pairs) whose ended
    version the caller would have been given, judged and cut as a live record is
    (``_read``); the versions are opened only to be judged, and never leave."""
    deletions = {version.head.row_id: deletion for deletion, version in located}
    kept = {item.head.row_id for item, _, _ in _read(gate, caller, [v for _, v in located])}
    return [deletion for row_id, deletion in deletions.items() if row_id in kept]


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
