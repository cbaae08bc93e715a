"""A deletion is told only to who may read the record: to anyone else, a read, a vread
of the deletion or a Patient's $everything answers 404 as for an id never used (410
told every caller that the id had been a record)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from carevault.bootstrap import Services
from tests.integration.access.group import Group, build_group
from tests.support.client import FhirTestClient
from tests.support.staff import Staff


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _answer(group: Group, who: Staff, path: str) -> tuple[int, str]:
    response = group.call(who, "GET", path)
    return response.status_code, response.json()["issue"][0]["code"]


def test_a_deleted_record_is_unknown_to_who_may_not_read_it(
    group: Group, api: FhirTestClient
) -> None:
    observation = group.tw_patient.observation
    assert api.delete(f"/fhir/Observation/{observation}").status_code == 204
    unknown = _answer(group, group.doctor_tm, "/fhir/Observation/no-such-record")
    assert unknown == (404, "not-found")

    for who in (group.doctor_tm, group.desk_tm, group.desk_tw):
        assert _answer(group, who, f"/fhir/Observation/{observation}") == unknown
        assert _answer(group, who, f"/fhir/Observation/{observation}/_history/2") == unknown
    # The clinic whose doctor may read it is told it was deleted.
    assert _answer(group, group.doctor_tw, f"/fhir/Observation/{observation}")[0] == 410
    assert _answer(group, group.doctor_tw, f"/fhir/Observation/{observation}/_history/2")[0] == 410


def test_a_deleted_patient_is_unknown_to_another_clinic(group: Group, api: FhirTestClient) -> None:
    created = api.post_json(
        "/fhir/Patient",
        {
            "resourceType": "Patient",
            "name": [{"family": "Ho"}],
            "managingOrganization": {"reference": "Organization/clinic-tw"},
        },
    )
    patient = created.json()["id"]
    assert api.delete(f"/fhir/Patient/{patient}").status_code == 204
    unknown = _answer(group, group.desk_tm, "/fhir/Patient/no-such-patient")

    assert _answer(group, group.desk_tm, f"/fhir/Patient/{patient}") == unknown
    assert _answer(group, group.doctor_tm, f"/fhir/Patient/{patient}/$everything") == unknown
    assert _answer(group, group.desk_tw, f"/fhir/Patient/{patient}")[0] == 410
    assert _answer(group, group.doctor_tw, f"/fhir/Patient/{patient}/$everything")[0] == 410
