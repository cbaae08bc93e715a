"""The audit entries of a bulk load: one per patient in each batch, not one per record.

A bulk load (``carevault import``, seeding) is the system stating facts, tens of
thousands of records a minute. One entry per patient per batch keeps every patient's
access report complete (the entry names each record written, by type and id, and
what each visit opened), while the ledger grows by patients rather than by records.
Records that belong to no patient (the directory: clinics, practitioners, schedules)
share one entry per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from carevault.domain.categories import DataCategory
from carevault.fhir.categories import element_categories
from carevault.ledger.events import AuditEvent
from carevault.vault.records import WriteResult
from carevault.vault.writer import Operation, Put

#: Builds one entry: (patient pseudonym, patient id, categories, detail) → event.
MakeEvent = Callable[[str | None, str | None, frozenset[DataCategory], dict[str, Any]], AuditEvent]


@dataclass
class _Batch:
    patient_id: str | None = None
    categories: set[DataCategory] = field(default_factory=set)
    written: dict[str, list[str]] = field(default_factory=dict)
    created: int = 0
    updated: int = 0
    opens: list[dict[str, Any]] = field(default_factory=list)
    registered: set[str] = field(default_factory=set)


def patient_batch_events(
    operations: Sequence[Operation],
    results: Sequence[WriteResult],
    care_notes: Sequence[dict[str, Any] | None],
    make_event: MakeEvent,
) -> list[AuditEvent]:
    """One event per patient (in order of first appearance), then one for the directory."""
    batches: dict[str | None, _Batch] = {}
    for operation, result, note in zip(operations, results, care_notes, strict=True):
        head = result.head
        batch = batches.get(head.patient_pseudonym)
        if batch is None:
            # Not ``setdefault``: it would make (and drop) a batch for every record.
            batch = batches[head.patient_pseudonym] = _Batch()
        if head.resource_type == "Patient":
            batch.patient_id = head.resource_id
        if isinstance(operation, Put):
            batch.categories |= (
                operation.derived.categories
                if operation.derived is not None
                else element_categories(operation.resource_type, operation.resource)
            )
        batch.written.setdefault(head.resource_type, []).append(
            f"{head.resource_id}/_history/{head.version_id}"
        )
        if result.created:
            batch.created += 1
        else:
            batch.updated += 1
        if note is not None:
            batch.opens.extend(opened for opened in note["opens"] if opened not in batch.opens)
            if "registered" in note:
                batch.registered.add(note["registered"])
    ordered: list[str | None] = [key for key in batches if key is not None]
    if None in batches:
        ordered.append(None)
    events = []
    for pseudonym in ordered:
        batch = batches[pseudonym]
        detail: dict[str, Any] = {
            "written": batch.written,
            "created": batch.created,
            "updated": batch.updated,
        }
        if batch.opens:
            detail["care"] = {"opens": batch.opens}
        if batch.registered:
            detail["registered"] = sorted(batch.registered)
        events.append(make_event(pseudonym, batch.patient_id, frozenset(batch.categories), detail))
    return events
