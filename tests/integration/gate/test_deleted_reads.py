"""A deletion is told only to who may read the record: to anyone else, a read, a vread
of the deletion or a Patient's $everything answers 404 as for an id never used (410
told every caller that the id had been a record)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.vault.tables import resource_version
from tests.integration.access.group import FLU, HIV, TM, Group, build_group, doctors_condition
from tests.support.client import FhirTestClient
from tests.support.staff import Staff, make_staff


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


def _entries(group: Group, who: Staff, path: str) -> list[str]:
    """The fullUrls a history lists (a deletion's entry has no resource, only its url)."""
    response = group.call(who, "GET", path)
    assert response.status_code == 200, response.text
    return [entry["fullUrl"] for entry in response.json().get("entry", [])]


def test_a_deleted_sensitive_record_is_unknown_to_who_may_not_see_it(
    group: Group, api: FhirTestClient
) -> None:
    """Hole: a deletion was judged on nothing but its type and patient. A pharmacist of
    the clinic, from whom a live HIV diagnosis is withheld whole (404), was told of the
    deleted one: 410 on a read and a vread of the deletion, and its history (and the type
    and system history) listed the deletion. Judged on the version the deletion ended,
    it is as unknown to them as an id never used."""
    pharmacist = make_staff(group.services, Role.PHARMACIST, [TM])
    hidden = doctors_condition(group, HIV)
    ordinary = doctors_condition(group, FLU)
    for condition in (hidden, ordinary):
        assert api.delete(f"/fhir/Condition/{condition}").status_code == 204
    unknown = _answer(group, pharmacist, "/fhir/Condition/no-such-record")
    assert unknown == (404, "not-found")

    for path in ("", "/_history", "/_history/1", "/_history/2"):
        assert _answer(group, pharmacist, f"/fhir/Condition/{hidden}{path}") == unknown, path
    for level in ("/fhir/Condition/_history", "/fhir/_history"):
        listed = _entries(group, pharmacist, level)
        assert not any(url.endswith(f"/Condition/{hidden}") for url in listed), level
        assert any(url.endswith(f"/Condition/{ordinary}") for url in listed), level
    # An ordinary deletion is told to the pharmacist, and the HIV one to the doctor.
    assert _answer(group, pharmacist, f"/fhir/Condition/{ordinary}")[0] == 410
    assert _answer(group, group.doctor_tm, f"/fhir/Condition/{hidden}")[0] == 410
    assert len(_entries(group, group.doctor_tm, f"/fhir/Condition/{hidden}/_history")) == 2
    listed = _entries(group, group.doctor_tm, "/fhir/Condition/_history")
    assert sum(url.endswith(f"/Condition/{hidden}") for url in listed) == 2


def test_history_of_a_deleted_record_is_unknown_to_who_may_not_read_it(
    group: Group, api: FhirTestClient
) -> None:
    """Hole: a read of another clinic's deleted record answered 404, but its history and
    its old versions 403, telling that the id had been a record."""
    observation = group.tw_patient.observation
    assert api.delete(f"/fhir/Observation/{observation}").status_code == 204
    unknown = _answer(group, group.doctor_tm, "/fhir/Observation/no-such-record")

    for who in (group.doctor_tm, group.desk_tm):
        for path in ("/_history", "/_history/1", "/_history/3"):
            answer = _answer(group, who, f"/fhir/Observation/{observation}{path}")
            assert answer == unknown, path
    assert len(_entries(group, group.doctor_tw, f"/fhir/Observation/{observation}/_history")) == 2


def test_a_deleted_record_too_costly_to_judge_refuses_type_history(
    group: Group, api: FhirTestClient
) -> None:
    """Each deleted record a type's history reaches is judged on the version its deletion
    ended, which must be opened: beyond the gate's candidate limit the history is refused
    as too costly (narrow it with _since), as a search that would open too many is."""
    pharmacist = make_staff(group.services, Role.PHARMACIST, [TM])
    for code in (HIV, FLU):
        assert api.delete(f"/fhir/Condition/{doctors_condition(group, code)}").status_code == 204
    since = (datetime.now(UTC) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    group.services.gate.candidate_limit = 1

    response = group.call(pharmacist, "GET", "/fhir/Condition/_history")

    assert response.status_code == 400, response.text
    assert response.json()["issue"][0]["code"] == "too-costly"
    assert "narrow with _since" in response.text
    # Records deleted before _since have no version to list: none is opened.
    assert _entries(group, pharmacist, f"/fhir/Condition/_history?_since={since}") == []


def test_a_deletion_is_judged_under_the_facts_of_the_version_it_ended(
    group: Group, api: FhirTestClient
) -> None:
    """A deletion carries its record's patient and clinic, those of the version it ended.
    Were they ever to differ (a version stored as another clinic's patient's), the
    deletion is judged under both, as an old version is: unknown to who may not read
    that version."""
    pharmacist = make_staff(group.services, Role.PHARMACIST, [TM])
    condition = doctors_condition(group, FLU)
    assert api.delete(f"/fhir/Condition/{condition}").status_code == 204
    assert _answer(group, pharmacist, f"/fhir/Condition/{condition}")[0] == 410
    vault = group.services.gate.vault
    other = vault.locate("Patient", group.tw_patient.id).head.patient_pseudonym
    with vault.engine.begin() as connection:
        connection.execute(
            update(resource_version)
            .where(
                resource_version.c.resource_type == "Condition",
                resource_version.c.resource_id == condition,
                resource_version.c.version_id == 1,
            )
            .values(patient_pseudonym=other, clinic_id="clinic-tw")
        )

    assert _answer(group, pharmacist, f"/fhir/Condition/{condition}") == (404, "not-found")
