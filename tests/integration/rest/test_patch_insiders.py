"""Patches and conditional writes never widen access (issue 9's rule, issue 14's new
interactions): what an insider with an ordinary login tries through PATCH and through
criteria, and what answers. On SQLite and PostgreSQL.

A patch is judged as the PUT it amounts to (the stored and the new version); a
conditional interaction sees only what its caller may read, and a record the caller may
not see never becomes a 412 that reveals it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.ledger.events import Outcome, Tag
from tests.integration.access.group import (
    HKID_SYSTEM,
    TM,
    TW,
    Group,
    build_group,
    encounter,
)
from tests.support.client import FHIR_JSON, FhirTestClient
from tests.support.staff import Staff, open_token

JSON_PATCH = {"content-type": "application/json-patch+json"}
MERGE_PATCH = {"content-type": "application/merge-patch+json"}


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def patch_as(
    group: Group, who: Staff, path: str, body: Any, media: dict[str, str] = JSON_PATCH
) -> Any:
    return group.web.patch(
        path, content=json.dumps(body).encode(), headers={**who.headers, **media}
    )


def denied(group: Group, who: Staff) -> list[Any]:
    principal = f"staff:{who.account.username}"
    return [e for e in group.events() if e.outcome is Outcome.DENIED and e.principal == principal]


def test_a_front_desk_cannot_patch_another_clinics_patient(group: Group) -> None:
    patient = group.tw_patient.id
    path = f"/fhir/Patient/{patient}"

    response = patch_as(
        group,
        group.desk_tm,
        path,
        [{"op": "replace", "path": "/name/0/family", "value": "Hijacked"}],
    )

    assert response.status_code == 403
    assert response.json()["resourceType"] == "OperationOutcome"
    own = group.call(group.desk_tw, "GET", path).json()
    assert own["name"][0]["family"] == "Lee" and own["meta"]["versionId"] == "1"
    refused = denied(group, group.desk_tm)
    assert refused and all("Hijacked" not in e.canonical().decode() for e in refused)


@pytest.mark.parametrize("media", [JSON_PATCH, MERGE_PATCH], ids=["json-patch", "merge-patch"])
def test_a_patch_cannot_move_a_patient_to_another_clinic(
    group: Group, media: dict[str, str]
) -> None:
    patient = group.tw_patient.id
    path = f"/fhir/Patient/{patient}"
    moved = {"reference": f"Organization/{TM}"}
    body: Any = (
        [{"op": "replace", "path": "/managingOrganization", "value": moved}]
        if media is JSON_PATCH
        else {"managingOrganization": moved}
    )

    response = patch_as(group, group.desk_tw, path, body, media)

    assert response.status_code == 403
    assert "transfer" in response.json()["issue"][0]["diagnostics"]
    own = group.call(group.desk_tw, "GET", path).json()
    assert own["managingOrganization"] == {"reference": f"Organization/{TW}"}
    assert own["meta"]["versionId"] == "1"
    assert group.call(group.desk_tm, "GET", path).status_code == 403


def test_a_front_desk_patch_keeps_the_hkid_it_cannot_see(group: Group) -> None:
    patient = group.tw_patient.id
    path = f"/fhir/Patient/{patient}"
    view = group.call(group.desk_tw, "GET", path).json()
    assert "identifier" not in view  # withheld from the front desk, labelled SUBSETTED

    response = patch_as(
        group,
        group.desk_tw,
        path,
        [{"op": "replace", "path": "/telecom/0/value", "value": "+852 9000 1111"}],
    )

    assert response.status_code == 200, response.text
    full = group.call(group.doctor_tw, "GET", path).json()
    assert full["identifier"] == [{"system": HKID_SYSTEM, "value": group.tw_patient.hkid}]
    assert full["telecom"][0]["value"] == "+852 9000 1111"
    assert "security" not in full["meta"]  # the view's label is not written to the record


def test_a_patch_cannot_move_an_observation_to_another_patient(group: Group) -> None:
    own = group.call(group.doctor_tm, "GET", f"/fhir/Observation?patient={group.tm_patient.id}")
    (observation_id,) = [entry["resource"]["id"] for entry in own.json()["entry"]]
    path = f"/fhir/Observation/{observation_id}"

    response = patch_as(
        group,
        group.doctor_tm,
        path,
        [
            {
                "op": "replace",
                "path": "/subject/reference",
                "value": f"Patient/{group.tw_patient.id}",
            }
        ],
    )

    assert response.status_code == 403
    assert "another patient" in response.json()["issue"][0]["diagnostics"]
    kept = group.call(group.doctor_tm, "GET", path).json()
    assert kept["subject"] == {"reference": f"Patient/{group.tm_patient.id}"}


def test_a_patch_cannot_place_a_record_at_another_clinic(group: Group) -> None:
    visit = group.call(
        group.doctor_tm, "POST", "/fhir/Encounter", encounter(group.tm_patient.id, TM, "dr-tm")
    )
    assert visit.status_code == 201, visit.text
    path = f"/fhir/Encounter/{visit.json()['id']}"

    response = patch_as(
        group,
        group.doctor_tm,
        path,
        [{"op": "replace", "path": "/serviceProvider/reference", "value": f"Organization/{TW}"}],
    )

    assert response.status_code == 403
    assert group.call(group.doctor_tm, "GET", path).json()["serviceProvider"] == {
        "reference": f"Organization/{TM}"
    }


def test_patching_an_encounter_creates_no_care_a_put_could_not(group: Group) -> None:
    patient = group.tw_patient.id
    # An encounter at one's own clinic for another clinic's patient opens nothing (issue 9).
    visit = group.call(group.doctor_tm, "POST", "/fhir/Encounter", encounter(patient, TM, "dr-tm"))
    assert visit.status_code == 201, visit.text
    path = f"/fhir/Encounter/{visit.json()['id']}"
    # Turned into a visit today, with the doctor as participant, by patch.
    response = patch_as(
        group,
        group.doctor_tm,
        path,
        [
            {"op": "replace", "path": "/status", "value": "in-progress"},
            {
                "op": "add",
                "path": "/participant/-",
                "value": {"individual": {"reference": "Practitioner/dr-tm"}},
            },
        ],
    )

    # The record is his clinic's, so he may amend it, as by PUT; it still opens nothing.
    assert response.status_code == 200, response.text
    assert response.json()["meta"]["versionId"] == "2"
    assert group.call(group.doctor_tm, "GET", f"/fhir/Patient/{patient}").status_code == 403
    found = group.call(group.doctor_tm, "GET", f"/fhir/Observation?patient={patient}").json()
    assert found["total"] == 0
    (updated,) = [e for e in group.events(Tag.FHIR_UPDATE) if e.resource_id == visit.json()["id"]]
    assert updated.outcome is Outcome.SUCCESS
    assert updated.detail["care"]["opens"] == []
    # The same change sent as a PUT is judged the same way.
    as_put = {**response.json(), "status": "finished"}
    put = group.call(group.doctor_tm, "PUT", path, as_put)
    assert put.status_code == 200, put.text
    assert group.call(group.doctor_tm, "GET", f"/fhir/Patient/{patient}").status_code == 403


def test_a_patch_by_the_treating_doctor_of_his_own_patients_encounter_opens_nothing_new(
    group: Group,
) -> None:
    visit = group.call(
        group.doctor_tm, "POST", "/fhir/Encounter", encounter(group.tm_patient.id, TM, "dr-tm")
    )
    path = f"/fhir/Encounter/{visit.json()['id']}"
    # Pointing it at the other clinic's patient is a move to another patient: refused.
    moved = patch_as(
        group,
        group.doctor_tm,
        path,
        {"subject": {"reference": f"Patient/{group.tw_patient.id}"}},
        MERGE_PATCH,
    )
    assert moved.status_code == 403
    assert (
        group.call(group.doctor_tm, "GET", f"/fhir/Patient/{group.tw_patient.id}").status_code
        == 403
    )
    (written,) = [e for e in group.events(Tag.FHIR_CREATE) if e.resource_id == visit.json()["id"]]
    assert written.outcome is Outcome.SUCCESS


# --- conditional interactions see only what the caller may read ---------------------------------


def _hkid_url(kind: str, hkid: str) -> str:
    return f"/fhir/{kind}?identifier={HKID_SYSTEM}|{hkid}"


def test_a_conditional_update_whose_only_match_is_hidden_is_refused_as_a_duplicate(
    group: Group,
) -> None:
    hidden = group.tw_patient
    body = {
        "resourceType": "Patient",
        "identifier": [{"system": HKID_SYSTEM, "value": hidden.hkid}],
        "name": [{"family": "Overwritten"}],
        "birthDate": hidden.birth_date,
    }

    response = group.call(group.desk_tm, "PUT", _hkid_url("Patient", hidden.hkid), body)

    # Not a 412 (that would say "several"), not a create (a split record): the rule of
    # conditional create, behind its throttle.
    assert response.status_code == 409
    assert response.json()["issue"][0]["code"] == "duplicate"
    diagnostics = response.json()["issue"][0]["diagnostics"]
    assert hidden.id not in diagnostics and "Lee" not in diagnostics
    assert "entry" not in group.call(group.desk_tm, "GET", _hkid_url("Patient", hidden.hkid)).json()
    own = group.call(group.doctor_tw, "GET", f"/fhir/Patient/{hidden.id}").json()
    assert own["name"][0]["family"] == "Lee" and own["meta"]["versionId"] == "1"
    refusals = [e for e in denied(group, group.desk_tm) if e.tag == Tag.FHIR_CREATE]
    assert refusals and refusals[0].detail["conditional"] == ["identifier"]


def test_a_hidden_match_beside_a_visible_one_is_not_a_412(
    group: Group, api: FhirTestClient
) -> None:
    hidden = group.tw_patient
    # The same person also registered at Tuen Mun (a duplicate record the group has).
    duplicate = api.post_json(
        "/fhir/Patient",
        {
            "resourceType": "Patient",
            "identifier": [{"system": HKID_SYSTEM, "value": hidden.hkid}],
            "name": [{"family": "Lee"}],
            "birthDate": hidden.birth_date,
            "managingOrganization": {"reference": f"Organization/{TM}"},
        },
    ).json()
    body = {
        "resourceType": "Patient",
        "identifier": [{"system": HKID_SYSTEM, "value": hidden.hkid}],
        "name": [{"family": "Lee", "given": ["Updated"]}],
        "birthDate": hidden.birth_date,
    }

    updated = group.call(group.doctor_tm, "PUT", _hkid_url("Patient", hidden.hkid), body)
    patched = group.web.patch(
        _hkid_url("Patient", hidden.hkid),
        content=json.dumps([{"op": "add", "path": "/gender", "value": "female"}]).encode(),
        headers={**group.doctor_tm.headers, **JSON_PATCH},
    )

    assert updated.status_code == 200, updated.text
    assert updated.json()["id"] == duplicate["id"]
    assert patched.status_code == 200, patched.text
    assert patched.json()["id"] == duplicate["id"] and patched.json()["gender"] == "female"
    other = group.call(group.doctor_tw, "GET", f"/fhir/Patient/{hidden.id}").json()
    assert other["meta"]["versionId"] == "1" and "gender" not in other


def test_conditional_delete_and_patch_of_hidden_records_do_nothing_and_tell_nothing(
    group: Group,
) -> None:
    hidden = group.tw_patient
    query = f"/fhir/Observation?patient={hidden.id}"

    deleted = group.web.request("DELETE", query, headers=group.doctor_tm.headers)
    patched = group.web.patch(
        query,
        content=json.dumps([{"op": "replace", "path": "/status", "value": "cancelled"}]).encode(),
        headers={**group.doctor_tm.headers, **JSON_PATCH},
    )
    nothing = group.web.request(
        "DELETE", "/fhir/Observation?patient=no-such-patient", headers=group.doctor_tm.headers
    )

    assert deleted.status_code == nothing.status_code == 204
    assert patched.status_code == 404
    kept = group.call(group.doctor_tw, "GET", f"/fhir/Observation/{hidden.observation}")
    assert kept.status_code == 200 and kept.json()["meta"]["versionId"] == "1"


def test_a_conditional_update_cannot_take_over_another_clinics_patient_by_id(
    group: Group,
) -> None:
    hidden = group.tw_patient
    body = {
        "resourceType": "Patient",
        "id": hidden.id,
        "name": [{"family": "Hijacked"}],
        "managingOrganization": {"reference": f"Organization/{TM}"},
    }

    response = group.call(group.desk_tm, "PUT", f"/fhir/Patient?_id={hidden.id}", body)

    assert response.status_code == 400  # the body names an id the criteria do not match
    own = group.call(group.doctor_tw, "GET", f"/fhir/Patient/{hidden.id}").json()
    assert own["name"][0]["family"] == "Lee" and own["meta"]["versionId"] == "1"


def test_the_front_desk_updates_its_own_patient_conditionally(group: Group) -> None:
    own = group.tm_patient
    current = group.call(group.desk_tm, "GET", f"/fhir/Patient/{own.id}").json()
    current["telecom"] = [{"system": "phone", "value": "+852 9888 7777"}]
    current.pop("meta")

    response = group.web.put(
        f"/fhir/Patient?_id={own.id}",
        content=json.dumps(current).encode(),
        headers={**group.desk_tm.headers, **FHIR_JSON},
    )

    assert response.status_code == 200, response.text
    full = group.call(group.doctor_tm, "GET", f"/fhir/Patient/{own.id}").json()
    assert full["identifier"] == [{"system": HKID_SYSTEM, "value": own.hkid}]
    assert full["telecom"] == [{"system": "phone", "value": "+852 9888 7777"}]


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_a_write_answers_only_what_the_writer_may_read(group: Group, method: str) -> None:
    patient = group.tw_patient.id
    path = f"/fhir/Patient/{patient}"
    view = group.call(group.desk_tw, "GET", path).json()
    assert "identifier" not in view
    phone = {"system": "phone", "value": "+852 9000 2222"}
    if method == "PUT":
        response = group.call(group.desk_tw, "PUT", path, {**view, "telecom": [phone]})
    else:
        response = patch_as(group, group.desk_tw, path, {"telecom": [phone]}, MERGE_PATCH)

    assert response.status_code == 200, response.text
    # The stored record keeps the HKID; the answer to the front desk does not carry it.
    assert "identifier" not in response.json()
    assert group.tw_patient.hkid not in response.text
    assert group.call(group.doctor_tw, "GET", path).json()["identifier"][0]["value"] == (
        group.tw_patient.hkid
    )


def test_a_token_that_may_write_but_not_read_is_told_saved_not_shown(group: Group) -> None:
    token = open_token(group.services, group.desk_tm.account, "user/Patient.cu")
    headers = {"authorization": f"Bearer {token}", **FHIR_JSON}
    body = {
        "resourceType": "Patient",
        "identifier": [{"system": HKID_SYSTEM, "value": "Z000000(1)"}],
        "name": [{"family": "Blind"}],
    }

    created = group.web.post("/fhir/Patient", content=json.dumps(body).encode(), headers=headers)

    assert created.status_code == 201, created.text
    assert created.json()["resourceType"] == "OperationOutcome"
    assert "Blind" not in created.text and "Z000000" not in created.text
    assert created.headers["location"].endswith("/_history/1")
    patched = group.web.patch(
        "/fhir" + created.headers["location"].split("/fhir", 1)[1].rsplit("/_history", 1)[0],
        content=json.dumps({"gender": "other"}).encode(),
        headers={**headers, **MERGE_PATCH},
    )
    assert patched.status_code == 403  # a patch reads first: no read scope, no patch


HIV = "86406008"
DIABETES = "44054006"


def _condition(patient: str, code: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
    }


@pytest.mark.parametrize("how", ["conditional-update", "if-none-exist"])
def test_criteria_on_another_clinics_clinical_records_are_no_diagnosis_oracle(
    group: Group, api: FhirTestClient, how: str
) -> None:
    """A clinician of Tuen Mun asks, through the criteria of a conditional write, whether
    a Tsuen Wan patient (whom he may not read) has HIV. The unseen-match refusal (409)
    exists so that a patient is not registered twice; on clinical records it told
    "yes, this diagnosis" (409) from "no" (a refused or accepted write), one answer per
    question. A hidden clinical match must be treated as no match at all."""
    hidden = group.tw_patient
    assert api.post_json("/fhir/Condition", _condition(hidden.id, HIV)).status_code == 201

    def ask(code: str) -> Any:
        criteria = f"patient=Patient/{hidden.id}&code=http://snomed.info/sct|{code}"
        body = _condition(hidden.id, code)
        if how == "conditional-update":
            return group.call(group.doctor_tm, "PUT", f"/fhir/Condition?{criteria}", body)
        return group.web.post(
            "/fhir/Condition",
            content=json.dumps(body).encode(),
            headers={**group.doctor_tm.headers, **FHIR_JSON, "If-None-Exist": criteria},
        )

    has_it, has_not = ask(HIV), ask(DIABETES)

    assert has_it.status_code == has_not.status_code == 403, (has_it.text, has_not.text)
    assert has_it.json()["issue"][0]["code"] == has_not.json()["issue"][0]["code"]
    assert "duplicate" not in has_it.text


@pytest.mark.parametrize("how", ["conditional-update", "if-none-exist"])
def test_the_duplicate_refusal_tells_only_that_the_identifier_is_known(
    group: Group, how: str
) -> None:
    """A front desk at Tuen Mun holding a Tsuen Wan patient's HKID asks, through the
    other criteria of a conditional write, about that patient's birth date and name. The
    409 (duplicate) may say that the identifier is registered in the group, as
    ``$register`` would; it must not say which birth date or name goes with it."""
    hidden = group.tw_patient
    body = {
        "resourceType": "Patient",
        "name": [{"family": "Probe"}],
        "managingOrganization": {"reference": f"Organization/{TM}"},
    }
    hkid = f"identifier={HKID_SYSTEM}|{hidden.hkid}"

    def ask(criteria: str) -> Any:
        if how == "conditional-update":
            return group.call(group.desk_tm, "PUT", f"/fhir/Patient?{hkid}&{criteria}", body)
        return group.web.post(
            "/fhir/Patient",
            content=json.dumps(body).encode(),
            headers={**group.desk_tm.headers, **FHIR_JSON, "If-None-Exist": f"{hkid}&{criteria}"},
        )

    answers = {
        criteria: ask(criteria).status_code
        for criteria in (
            "birthdate=ge1982-01-01",
            "birthdate=lt1982-01-01",
            "family=Lee",
            "family=Wong",
            "_lastUpdated=lt2000-01-01",
        )  # five: the sixth refusal in 15 minutes is a 429 (the registration throttle)
    }

    assert set(answers.values()) == {409}, answers
    created = group.call(group.doctor_tm, "GET", "/fhir/Patient?family=Probe").json()
    assert created["total"] == 0
