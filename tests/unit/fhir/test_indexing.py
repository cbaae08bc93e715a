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
