"""The audit entries of a bulk load: one per patient per batch, every record named once."""

from __future__ import annotations

from typing import Any

from carevault.domain.categories import DataCategory
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate.loading import patient_batch_events
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.vault.records import Head, WriteResult
from carevault.vault.writer import Put


def _write(
    kind: str, ident: str, pseudonym: str | None, version: int = 1
) -> tuple[Put, WriteResult]:
    resource: dict[str, Any] = {"resourceType": kind, "id": ident}
    if kind == "Patient":
        resource["name"] = [{"family": "Chan"}]
    head = Head(0, kind, ident, version, 0, False, pseudonym, "clinic-1", None)
    return Put(RESOURCE_TYPES[kind], ident, resource), WriteResult(
        head, version == 1, b"{}", resource
    )


def _event(
    pseudonym: str | None,
    patient_id: str | None,
    categories: frozenset[DataCategory],
    detail: dict[str, Any],
) -> AuditEvent:
    return AuditEvent(
        Tag.FHIR_IMPORT,
        Outcome.SUCCESS,
        0,
        patient_pseudonym=pseudonym,
        resource_id=patient_id,
        categories=tuple(sorted(categories)),
        detail=detail,
    )


def test_one_entry_per_patient_and_one_for_the_directory() -> None:
    writes = [
        _write("Organization", "org-1", None),
        _write("Patient", "p1", "ps1"),
        _write("Encounter", "e1", "ps1"),
        _write("Patient", "p2", "ps2", version=2),
        _write("Observation", "o1", "ps1"),
    ]
    notes = [
        None,
        None,
        {"opens": [{"clinic": "clinic-1"}], "reason": "visit", "registered": "clinic-1"},
        None,
        None,
    ]
    events = patient_batch_events([w[0] for w in writes], [w[1] for w in writes], notes, _event)
    assert [e.patient_pseudonym for e in events] == ["ps1", "ps2", None]
    first, second, directory = events
    assert first.resource_id == "p1"
    assert first.detail["written"] == {
        "Patient": ["p1/_history/1"],
        "Encounter": ["e1/_history/1"],
        "Observation": ["o1/_history/1"],
    }
    assert first.detail["care"] == {"opens": [{"clinic": "clinic-1"}]}
    assert first.detail["registered"] == ["clinic-1"]
    assert DataCategory.IDENTITY in first.categories
    assert (second.detail["created"], second.detail["updated"]) == (0, 1)
    assert directory.resource_id is None
    assert directory.detail["written"] == {"Organization": ["org-1/_history/1"]}
