"""Which terms a record is indexed by: a date of a record that is not patient data is
kept in the clear and searched there, never as a token; a health record's dates are
tokens (nothing of them is in the clear)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from carevault.fhir.indexing import clear_dates, index_terms
from carevault.fhir.registry import RESOURCE_TYPES

ZONE = ZoneInfo("Asia/Hong_Kong")
SLOT = {
    "resourceType": "Slot",
    "id": "s1",
    "schedule": {"reference": "Schedule/sc1"},
    "status": "free",
    "start": "2026-03-02T09:00:00+08:00",
    "end": "2026-03-02T09:15:00+08:00",
}
ENCOUNTER = {
    "resourceType": "Encounter",
    "id": "e1",
    "status": "finished",
    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
    "subject": {"reference": "Patient/p1"},
    "period": {"start": "2026-03-02T09:00:00+08:00", "end": "2026-03-02T09:15:00+08:00"},
}


def test_a_slot_is_found_by_its_dates_in_the_clear_not_by_date_tokens() -> None:
    slot = RESOURCE_TYPES["Slot"]

    indexed = {param.name for param, _ in index_terms(slot, SLOT, ZONE)}

    assert indexed == {"schedule", "status"}
    assert [name for name, _ in clear_dates(slot, SLOT, ZONE)] == ["start"]


def test_a_visit_is_found_by_date_tokens_and_has_no_clear_date() -> None:
    encounter = RESOURCE_TYPES["Encounter"]

    dated = [
        term for param, term in index_terms(encounter, ENCOUNTER, ZONE) if param.name == "date"
    ]

    assert dated
    assert clear_dates(encounter, ENCOUNTER, ZONE) == []


def test_class_category_onset_and_intent_are_indexed_under_their_r4_names() -> None:
    condition = {
        "resourceType": "Condition",
        "subject": {"reference": "Patient/p1"},
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                        "code": "problem-list-item",
                    }
                ]
            }
        ],
        "code": {"text": "sprain"},
        "onsetPeriod": {"start": "2026-03-02", "end": "2026-03-09"},
        "recordedDate": "2026-04-01",
    }
    prescription = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
    }

    def terms(type_name: str, resource: dict[str, object], name: str) -> list[str]:
        rt = RESOURCE_TYPES[type_name]
        return [term for param, term in index_terms(rt, resource, ZONE) if param.name == name]

    assert "sys|http://terminology.hl7.org/CodeSystem/v3-ActCode|AMB" in terms(
        "Encounter", ENCOUNTER, "class"
    )
    assert "any|problem-list-item" in terms("Condition", condition, "category")
    onset = terms("Condition", condition, "onset-date")
    # The onset only: the recorded date is the wider ``date``'s, not onset-date's.
    assert onset and set(onset) < set(terms("Condition", condition, "date"))
    assert terms("MedicationRequest", prescription, "intent") == [
        "any|order",
        "sysany|http://hl7.org/fhir/CodeSystem/medicationrequest-intent",
    ]
