"""A refused write tells no more than a read would (from an adversary's pass):

* If-Match is checked only once the write is allowed: a desk with no right on another
  clinic's patient was told 412 for every wrong version and 403 for the current one, and
  so could watch any record change;
* a record a role is told does not exist (a sensitive Condition for a pharmacist reads
  404) is not betrayed by a write: DELETE answers 404 as for an absent id, a PUT's
  refusal names only what was sent, never the hidden record's sensitivity, and a PUT
  with If-Match answers the absent id's 412 (stop 35's adversary);
* a DELETE of a record deleted already changes nothing and answers 204 (stop 35's
  integrator: a Patient was refused, judged as every category it could hold);
* a DELETE refused for what a record holds that its caller may not read names none of
  it: billing was told "may not write sensitive_clinical" of a claim whose hidden line
  bills an HIV test, a desk of a visit typed as HIV care.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from tests.integration.access.group import (
    FLU,
    HIV,
    HIV_TEST_LINE,
    TM,
    Group,
    build_group,
    doctors_condition,
    encounter,
    self_paid_claim,
)
from tests.support.client import FHIR_JSON, FhirTestClient
from tests.support.staff import Staff, make_staff


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _updated_twice(group: Group) -> str:
    path = f"/fhir/Patient/{group.tw_patient.id}"
    for family in ("Lee", "Li"):
        current = group.call(group.doctor_tw, "GET", path).json()
        current.pop("meta")
        changed = group.call(
            group.doctor_tw, "PUT", path, {**current, "name": [{"family": family}]}
        )
        assert changed.status_code == 200, changed.text
    return path


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_if_match_tells_a_stranger_nothing_of_the_version(group: Group, method: str) -> None:
    path = _updated_twice(group)
    body = json.dumps(
        {"resourceType": "Patient", "id": group.tw_patient.id, "name": [{"family": "X"}]}
    )
    answers = {
        version: group.web.request(
            method,
            path,
            content=body if method == "PUT" else None,
            headers={**group.desk_tm.headers, **FHIR_JSON, "if-match": f'W/"{version}"'},
        ).status_code
        for version in range(1, 6)
    }
    assert set(answers.values()) == {403}, answers


def test_if_match_still_refuses_a_stale_version_to_who_may_write(group: Group) -> None:
    path = _updated_twice(group)
    current = group.call(group.doctor_tw, "GET", path).json()
    current.pop("meta")
    stale = group.web.put(
        path,
        content=json.dumps(current),
        headers={**group.doctor_tw.headers, **FHIR_JSON, "if-match": 'W/"1"'},
    )
    assert stale.status_code == 412, stale.text
    fresh = group.web.put(
        path,
        content=json.dumps(current),
        headers={**group.doctor_tw.headers, **FHIR_JSON, "if-match": 'W/"3"'},
    )
    assert fresh.status_code == 200, fresh.text


def test_delete_of_a_hidden_record_answers_as_for_an_absent_one(group: Group) -> None:
    pharmacist = make_staff(group.services, Role.PHARMACIST, [TM])
    hidden, ordinary = doctors_condition(group, HIV), doctors_condition(group, FLU)
    assert group.call(pharmacist, "GET", f"/fhir/Condition/{hidden}").status_code == 404
    assert group.call(pharmacist, "GET", f"/fhir/Condition/{ordinary}").status_code == 200
    absent = group.call(pharmacist, "DELETE", "/fhir/Condition/no-such-record")
    on_hidden = group.call(pharmacist, "DELETE", f"/fhir/Condition/{hidden}")
    # Both delete nothing (R4 http.html#delete: 204), in the same words: none.
    assert absent.status_code == on_hidden.status_code == 204, on_hidden.text
    assert on_hidden.content == absent.content == b""
    assert on_hidden.headers.get("etag") is absent.headers.get("etag") is None
    # Refused all the same, and the record stays.
    assert group.call(group.doctor_tm, "GET", f"/fhir/Condition/{hidden}").status_code == 200
    assert group.call(pharmacist, "DELETE", f"/fhir/Condition/{ordinary}").status_code == 403


def test_a_refused_put_of_a_hidden_record_does_not_name_what_it_holds(group: Group) -> None:
    pharmacist = make_staff(group.services, Role.PHARMACIST, [TM])
    hidden, ordinary = doctors_condition(group, HIV), doctors_condition(group, FLU)
    blind = {
        "resourceType": "Condition",
        "code": {"text": "x"},
        "subject": {"reference": f"Patient/{group.tm_patient.id}"},
    }
    on_ordinary = group.call(
        pharmacist, "PUT", f"/fhir/Condition/{ordinary}", {**blind, "id": ordinary}
    )
    on_hidden = group.call(pharmacist, "PUT", f"/fhir/Condition/{hidden}", {**blind, "id": hidden})
    assert on_ordinary.status_code == on_hidden.status_code == 403
    assert "sensitive" not in on_hidden.text
    assert on_hidden.json()["issue"] == on_ordinary.json()["issue"]
    # The hidden record is unchanged.
    kept = group.call(group.doctor_tm, "GET", f"/fhir/Condition/{hidden}").json()
    assert kept["code"] == HIV


def prescription(group: Group, reason: dict[str, Any], rid: str | None = None) -> dict[str, Any]:
    """Tuen Mun's patient's prescription for ``reason`` (with the id ``rid``, if given)."""
    return {
        "resourceType": "MedicationRequest",
        **({"id": rid} if rid else {}),
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"text": "tablets"},
        "subject": {"reference": f"Patient/{group.tm_patient.id}"},
        "reasonCode": [reason],
    }


def test_an_if_match_put_on_a_hidden_record_answers_as_on_an_absent_id(group: Group) -> None:
    """Hole (an insider's probe): a pharmacist may write prescriptions, so a PUT with
    If-Match on an absent id answered 412 while on a hidden one (an HIV prescription)
    403: a probe that wrote nothing told which prescriptions are sensitive."""
    pharmacist = make_staff(group.services, Role.PHARMACIST, [TM])
    made = group.call(group.doctor_tm, "POST", "/fhir/MedicationRequest", prescription(group, HIV))
    assert made.status_code == 201, made.text
    hidden = made.json()["id"]
    assert group.call(pharmacist, "GET", f"/fhir/MedicationRequest/{hidden}").status_code == 404
    answers = []
    for rid in ("no-such-prescription", hidden):
        answer = group.web.put(
            f"/fhir/MedicationRequest/{rid}",
            content=json.dumps({**prescription(group, FLU), "id": rid}),
            headers={**pharmacist.headers, **FHIR_JSON, "if-match": 'W/"1"'},
        )
        assert answer.status_code == 412, answer.text
        issue = answer.json()["issue"][0]
        answers.append((issue["code"], issue["diagnostics"].replace(rid, "ID")))
    assert answers[0] == answers[1]
    kept = group.call(group.doctor_tm, "GET", f"/fhir/MedicationRequest/{hidden}").json()
    assert kept["reasonCode"] == [HIV] and kept["meta"]["versionId"] == "1"
    # What the role may not write is refused as it would be for an absent id.
    for rid in ("no-such-condition", doctors_condition(group, HIV)):
        refused = group.web.put(
            f"/fhir/Condition/{rid}",
            content=json.dumps(
                {
                    "resourceType": "Condition",
                    "id": rid,
                    "code": FLU,
                    "subject": {"reference": f"Patient/{group.tm_patient.id}"},
                }
            ),
            headers={**pharmacist.headers, **FHIR_JSON, "if-match": 'W/"1"'},
        )
        assert refused.status_code == 403, refused.text


def test_deleting_a_deleted_record_again_changes_nothing_and_is_no_refusal(
    group: Group,
) -> None:
    """FHIR R4 http.html#delete: deleting a deleted resource answers 200 or 204. A
    Patient was refused the second time (judged as every category a Patient may hold,
    the HKID's among them, which no physician may write)."""
    made = group.call(
        group.doctor_tm,
        "POST",
        "/fhir/Patient",
        {"resourceType": "Patient", "name": [{"family": "Twice"}], "gender": "other"},
    )
    assert made.status_code == 201, made.text
    path = f"/fhir/Patient/{made.json()['id']}"
    assert group.call(group.doctor_tm, "DELETE", path).status_code == 204
    again = group.call(group.doctor_tm, "DELETE", path)
    assert again.status_code == 204, again.text
    assert group.call(group.doctor_tm, "GET", path).status_code == 410
    # Still refused to who may read the record but could not have deleted it; to who may
    # not read it, unknown as an id never used (writes pass: a 403 told a stranger that
    # the id had been a patient), which deletes nothing (204, R4 http.html#delete).
    assert group.call(group.officer, "DELETE", path).status_code == 403
    assert group.call(group.desk_tw, "DELETE", path).status_code == 204
    assert group.call(group.doctor_tm, "DELETE", "/fhir/Patient/no-such-patient").status_code == 204
    assert group.call(group.doctor_tm, "GET", path).status_code == 410


def _refused_delete(group: Group, api: FhirTestClient, who: Staff, body: dict[str, Any]) -> Any:
    """The issues of ``who``'s refused DELETE of ``body``, written by the system."""
    made = api.post_json(f"/fhir/{body['resourceType']}", body)
    assert made.status_code == 201, made.text
    refused = group.call(who, "DELETE", f"/fhir/{body['resourceType']}/{made.json()['id']}")
    assert refused.status_code == 403, refused.text
    return refused.json()["issue"]


def test_a_refused_delete_names_nothing_its_caller_may_not_read(
    group: Group, api: FhirTestClient
) -> None:
    billing = make_staff(group.services, Role.BILLING, [TM])
    patient = group.tm_patient.id
    diagnosis = [{"sequence": 1, "diagnosisCodeableConcept": FLU}]

    on_flu = _refused_delete(group, api, billing, self_paid_claim(patient, diagnosis=diagnosis))
    on_hiv = _refused_delete(group, api, billing, self_paid_claim(patient, item=[HIV_TEST_LINE]))
    desk_on_flu = _refused_delete(group, api, group.desk_tm, {**encounter(patient, TM),
                                                              "reasonCode": [FLU]})  # fmt: skip
    desk_on_hiv = _refused_delete(group, api, group.desk_tm, {**encounter(patient, TM),
                                                              "type": [HIV]})  # fmt: skip

    assert on_flu == on_hiv
    assert desk_on_flu == desk_on_hiv
