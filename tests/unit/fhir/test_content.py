"""Directory records (no one's data) refer to no patient or relative (adv4)."""

from __future__ import annotations

from typing import Any

import pytest

from carevault.fhir.content import DIRECTORY_TYPES, check_directory_references
from carevault.fhir.outcome import Issue


def _refused(body: dict[str, Any]) -> list[tuple[str, ...]]:
    rules: list[Issue] = []
    check_directory_references(body, body["resourceType"], rules)
    return [issue.expression for issue in rules]


def test_the_directory_is_every_type_that_is_no_ones_data() -> None:
    assert {"Schedule", "Slot", "Location", "Organization", "Practitioner"} <= DIRECTORY_TYPES
    assert "Appointment" not in DIRECTORY_TYPES and "Patient" not in DIRECTORY_TYPES


@pytest.mark.parametrize(
    ("reference", "where"),
    [
        ({"reference": "Patient/p1"}, "Schedule.actor[0]"),
        ({"reference": "Patient/p1/_history/2"}, "Schedule.actor[0]"),
        ({"reference": "RelatedPerson/r1"}, "Schedule.actor[0]"),
        ({"reference": "Person/r1"}, "Schedule.actor[0]"),
        ({"reference": "https://other.example/fhir/Patient/p1"}, "Schedule.actor[0]"),
        ({"reference": "Patient?identifier=x|1"}, "Schedule.actor[0]"),
        ({"type": "Patient", "identifier": {"value": "1"}}, "Schedule.actor[0]"),
    ],
)
def test_a_schedule_naming_a_patient_is_refused_at_the_element(
    reference: dict[str, Any], where: str
) -> None:
    assert _refused({"resourceType": "Schedule", "actor": [reference]}) == [(where,)]


def test_a_contained_patient_is_refused() -> None:
    body = {
        "resourceType": "Schedule",
        "contained": [{"resourceType": "Patient", "id": "p"}],
        "actor": [{"reference": "#p"}],
    }
    assert _refused(body) == [("Schedule.actor[0]",), ("Schedule.contained[0]",)]


@pytest.mark.parametrize(
    "body",
    [
        {"resourceType": "Schedule", "actor": [{"reference": "Practitioner/d1"}]},
        {"resourceType": "Schedule", "actor": [{"reference": "Location/PatientLounge"}]},
        {"resourceType": "Location", "name": "Patient ward",
         "address": {"type": "physical", "text": "Patient entrance"}},
        {"resourceType": "Slot", "schedule": {"reference": "Schedule/s1"}},
        # A patient's own records are judged by the gate's patient rules, not here.
        {"resourceType": "Appointment", "participant": [{"actor": {"reference": "Patient/p"}}]},
    ],
)  # fmt: skip
def test_other_references_stand(body: dict[str, Any]) -> None:
    assert _refused(body) == []
