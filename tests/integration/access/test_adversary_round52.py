"""Adversary round 52, writes that widen access: what a refused update tells of a record
its sender may not read (SQLite and PostgreSQL).

An update is judged on what is stored, and one that names another patient than the
stored record's is refused ("an update cannot move a record to another patient"). That
refusal came before anything else was judged, so it told whose record an id was to
anyone: a doctor of another clinic, refused a read of an observation (403), sent it
back naming a candidate patient and learnt from the words of the refusal whether the
observation was that patient's; a record deleted, or withheld whole (a restricted
observation from a pharmacist), which a read answers 404 as an id never used, was
told to be a record, and whose. Now it is told only to who may change the stored
record; anyone else gets the answer the same update would get keeping the record's
patient, or, for a record they may not know of, the one an id never used gets.
"""

from __future__ import annotations

import json

import pytest

from carevault.domain.roles import Role
from carevault.ledger.events import Outcome, Tag
from tests.integration.access.group import TM, Group, observation
from tests.support.staff import Staff, make_staff

RESTRICTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
    "code": "R",
}


def _put(group: Group, who: Staff, resource_id: str, patient: str) -> tuple[int, str]:
    """PUT Observation/``resource_id`` naming ``patient``, with If-Match (so that an id
    never used is not created): the status and the diagnostics, the id taken out."""
    headers = {**who.headers, "content-type": "application/fhir+json", "If-Match": 'W/"1"'}
    body = {**observation(patient), "id": resource_id}
    response = group.web.request(
        "PUT", f"/fhir/Observation/{resource_id}", content=json.dumps(body), headers=headers
    )
    said = response.json()["issue"][0]["diagnostics"] if response.status_code >= 400 else ""
    return response.status_code, said.replace(resource_id, "<id>")


def _own_patient(group: Group) -> str:
    """A second patient of Tuen Mun's desk (the insider's own)."""
    made = group.call(
        group.desk_tm,
        "POST",
        "/fhir/Patient",
        {"resourceType": "Patient", "name": [{"family": "Ho"}]},
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def test_a_doctor_refused_a_read_does_not_learn_whose_record_it_is_from_an_update(
    group: Group,
) -> None:
    record = group.tw_patient.observation
    assert group.call(group.doctor_tm, "GET", f"/fhir/Observation/{record}").status_code == 403
    before = len(group.events(Tag.FHIR_UPDATE))

    someone_else = _put(group, group.doctor_tm, record, group.tm_patient.id)
    the_owner = _put(group, group.doctor_tm, record, group.tw_patient.id)

    assert someone_else[0] == 403
    assert someone_else == the_owner
    kept = group.call(group.doctor_tw, "GET", f"/fhir/Observation/{record}").json()
    assert kept["meta"]["versionId"] == "1"
    refused = group.events(Tag.FHIR_UPDATE)[before:]
    assert [event.outcome for event in refused] == [Outcome.DENIED, Outcome.DENIED]


def test_a_deleted_record_is_not_told_to_be_one_by_an_update(group: Group) -> None:
    record = group.tw_patient.observation
    assert group.call(group.doctor_tw, "DELETE", f"/fhir/Observation/{record}").status_code == 204
    assert group.call(group.doctor_tm, "GET", f"/fhir/Observation/{record}").status_code == 404

    for patient in (group.tm_patient.id, group.tw_patient.id):
        assert _put(group, group.doctor_tm, record, patient) == _put(
            group, group.doctor_tm, f"never-used-{patient[:8]}", patient
        ), patient
    gone = group.call(group.doctor_tw, "GET", f"/fhir/Observation/{record}")
    assert gone.status_code == 410


@pytest.mark.parametrize("role", [Role.PHARMACIST, Role.FRONT_DESK])
def test_a_record_withheld_whole_is_not_told_to_be_one_by_an_update(
    group: Group, role: Role
) -> None:
    made = group.call(
        group.doctor_tm,
        "POST",
        "/fhir/Observation",
        {**observation(group.tm_patient.id), "meta": {"security": [RESTRICTED]}},
    )
    assert made.status_code == 201, made.text
    record = made.json()["id"]
    insider = make_staff(group.services, role, [TM])
    other = _own_patient(group)
    assert group.call(insider, "GET", f"/fhir/Observation/{record}").status_code in (403, 404)

    for patient in (other, group.tm_patient.id):
        assert _put(group, insider, record, patient) == _put(
            group, insider, f"never-used-{patient[:8]}", patient
        ), patient


def test_a_desk_refused_an_update_is_not_told_which_observations_are_restricted(
    group: Group,
) -> None:
    restricted = group.call(
        group.doctor_tm,
        "POST",
        "/fhir/Observation",
        {**observation(group.tm_patient.id), "meta": {"security": [RESTRICTED]}},
    ).json()["id"]
    ordinary = group.tm_patient.observation
    before = len(group.events(Tag.FHIR_UPDATE))

    answers = {
        _put(group, group.desk_tm, record, group.tm_patient.id)
        for record in (
            restricted,
            ordinary,
        )
    }

    assert len(answers) == 1, answers
    ((status, said),) = answers
    assert status == 403 and "sensitive" not in said
    refused = group.events(Tag.FHIR_UPDATE)[before:]
    assert len(refused) == 2
    assert all(e.outcome is Outcome.DENIED and "sensitive" not in (e.reason or "") for e in refused)
