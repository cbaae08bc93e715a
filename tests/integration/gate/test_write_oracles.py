"""A refused write tells no more than a read would (from an adversary's pass):

* If-Match is checked only once the write is allowed: a desk with no right on another
  clinic's patient was told 412 for every wrong version and 403 for the current one, and
  so could watch any record change;
* a record a role is told does not exist (a sensitive Condition for a pharmacist reads
  404) is not betrayed by a write: DELETE answers 404 as for an absent id, and a PUT's
  refusal names only what was sent, never the hidden record's sensitivity.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from tests.integration.access.group import FLU, HIV, TM, Group, build_group, doctors_condition
from tests.support.client import FHIR_JSON, FhirTestClient
from tests.support.staff import make_staff


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
    assert absent.status_code == on_hidden.status_code == 404, on_hidden.text
    assert on_hidden.json()["issue"][0]["code"] == absent.json()["issue"][0]["code"]
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
