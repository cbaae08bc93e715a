"""A directory record (Schedule, Slot, Location, Organization, Practitioner*) is no
one's: stored in the clear, readable by every clinic, its reads recorded with no
patient. FHIR lets ``Schedule.actor`` name a Patient, so a doctor could publish a
patient's "HIV clinic" timetable group-wide, out of the care rules, the detectors and
the patient's access report (adv4). A reference to a patient or a relative in such a
record is refused (422, naming the element) and nothing is written."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from tests.integration.access.group import Group, build_group
from tests.support.client import FhirTestClient

pytestmark = pytest.mark.postgres


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _count(group: Group, resource_type: str) -> int:
    found = group.call(group.doctor_tm, "GET", f"/fhir/{resource_type}?_summary=count")
    assert found.status_code == 200, found.text
    return int(found.json()["total"])


@pytest.mark.parametrize(
    ("body", "element"),
    [
        (
            {"resourceType": "Schedule", "actor": [{"reference": "Patient/{tm}"}],
             "serviceType": [{"text": "HIV clinic"}]},
            "Schedule.actor[0]",
        ),
        (
            {"resourceType": "Schedule", "actor": [{"reference": "RelatedPerson/x1"}]},
            "Schedule.actor[0]",
        ),
        (
            {"resourceType": "Schedule",
             "actor": [{"reference": "https://elsewhere.example/fhir/Patient/{tm}"}]},
            "Schedule.actor[0]",
        ),
        (
            {"resourceType": "Schedule", "actor": [{"type": "Patient", "display": "A patient"}]},
            "Schedule.actor[0]",
        ),
        (
            {"resourceType": "Location", "name": "Bed 4",
             "partOf": {"reference": "Patient?identifier=x|1"}},
            "Location.partOf",
        ),
        (
            {"resourceType": "Slot", "schedule": {"reference": "Schedule/s1"}, "status": "busy",
             "start": "2026-01-01T09:00:00Z", "end": "2026-01-01T09:30:00Z",
             "extension": [{"url": "https://example.org/who",
                            "valueReference": {"reference": "Patient/{tm}"}}]},
            "Slot.extension[0].valueReference",
        ),
    ],
)  # fmt: skip
def test_a_directory_record_naming_a_patient_is_refused(
    group: Group, body: dict[str, Any], element: str
) -> None:
    resource_type = body["resourceType"]
    sent = json.loads(json.dumps(body).replace("{tm}", group.tm_patient.id))
    before = _count(group, resource_type)
    written = group.call(group.doctor_tm, "POST", f"/fhir/{resource_type}", sent)
    assert written.status_code == 422, written.text
    outcome = written.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert any(element in issue.get("expression", []) for issue in outcome["issue"])
    assert group.tm_patient.id not in written.text
    assert _count(group, resource_type) == before


def test_a_practitioners_schedule_is_still_the_directory(group: Group) -> None:
    """The control: a schedule of a practitioner is written and read group-wide."""
    body = {
        "resourceType": "Schedule",
        "actor": [{"reference": "Practitioner/dr-1", "display": "Dr Chan"}],
        "serviceType": [{"text": "General practice"}],
    }
    written = group.call(group.doctor_tm, "POST", "/fhir/Schedule", body)
    assert written.status_code == 201, written.text
    read = group.call(group.desk_tw, "GET", f"/fhir/Schedule/{written.json()['id']}")
    assert read.status_code == 200
