"""The audit entry of a read names what left, not what might have: the categories the
returned records actually hold (after subsetting), and only the records returned (one
page of $everything, not the whole compartment). The incident scope counts on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from carevault.bootstrap import Services
from carevault.ledger.events import AuditEvent, Tag
from tests.integration.access.group import TM, Group, build_group, observation
from tests.support.client import FhirTestClient


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _last(group: Group, tag: Tag) -> AuditEvent:
    return [event for event in group.events(tag) if event.principal != "system:test"][-1]


def test_a_read_names_the_categories_the_record_holds(group: Group, api: FhirTestClient) -> None:
    bare = api.post_json(
        "/fhir/Patient",
        {
            "resourceType": "Patient",
            "name": [{"family": "Bare"}],
            "managingOrganization": {"reference": f"Organization/{TM}"},
        },
    ).json()["id"]

    assert group.call(group.doctor_tm, "GET", f"/fhir/Patient/{bare}").status_code == 200
    assert set(_last(group, Tag.FHIR_READ).categories) == {"identity", "visit"}

    full = group.tm_patient.id
    assert group.call(group.desk_tm, "GET", f"/fhir/Patient/{full}").status_code == 200
    shown = set(_last(group, Tag.FHIR_READ).categories)
    assert shown == {"identity", "contact", "demographic", "visit"}  # the HKID was withheld


def test_everything_records_only_the_page_it_returns(group: Group, api: FhirTestClient) -> None:
    patient = group.tm_patient.id
    for number in range(4):
        assert (
            api.post_json("/fhir/Observation", observation(patient, f"r{number}")).status_code
            == 201
        )
    path = f"/fhir/Patient/{patient}/$everything?_count=2"

    first = group.call(group.doctor_tm, "GET", path).json()

    returned = [
        f"{entry['resource']['resourceType']}/{entry['resource']['id']}"
        for entry in first["entry"]
        if entry["resource"]["resourceType"] not in ("Organization", "Practitioner")
    ]
    assert first["total"] == 7  # the patient, a visit and five observations
    assert len(returned) == 2
    (event,) = [e for e in group.events(Tag.FHIR_EVERYTHING) if e.detail.get("returned")][-1:]
    assert event.detail["returned"] == returned
