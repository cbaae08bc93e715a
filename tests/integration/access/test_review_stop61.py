"""The review of stop 61: R4 ref-1 judged in the gate, and round 79's record numbers, as a
front desk and a clinic app meet them (SQLite and PostgreSQL).

- ref-1 named an element as "not shown" wherever the record as stored differed from what
  was sent, so the desk learnt whether the HKID it typed was its patient's: a reference
  is now judged where the caller sent it, and named by its place there.
- A record stored with a dangling reference before the rule stays writable by whoever
  sends that reference back unchanged, and by a role not shown the element holding it.
- A desk held by the registration throttle could save no patient carrying a medical
  record number (every save of its view carries one): only a number the record does
  not hold counts.
- ``$validate`` refused a desk's view that refers to a contained resource it was not
  shown, which the save of that view accepts.
- The second review: a token that may write a patient but not read it was answered by
  what the record holds (a record number held, a dangling reference at a place); and
  ``$validate`` let through a labelled body with no id that its create refuses.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from carevault.bulk.loader import IMPORT_CALLER
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.vault.writer import Put
from tests.integration.access.group import (
    HKID_SYSTEM,
    TM,
    Group,
    encounter,
    register_body,
)
from tests.integration.gate.test_sensitive_items import visit_in_an_hiv_room
from tests.support.client import FHIR_JSON, FhirTestClient
from tests.support.staff import open_token

pytestmark = pytest.mark.postgres

MRN_SYSTEM = "http://carevault.hk/sid/mrn"
#: A valid HKID no patient of the group holds.
NEW_HKID = "K654321(9)"


def _desk_view(group: Group) -> tuple[str, dict[str, Any]]:
    path = f"/fhir/Patient/{group.tm_patient.id}"
    seen = group.call(group.desk_tm, "GET", path).json()
    return path, {key: value for key, value in seen.items() if key != "meta"}


def test_a_dangling_reference_is_named_alike_whatever_hkid_the_desk_typed(
    group: Group, api: FhirTestClient
) -> None:
    """The desk sends its patient with an HKID typed in (it may write one, not read one)
    and an identifier whose assigner is ``#nobody``: the patient's own number and a wrong
    one are answered alike, 400 naming the reference where it was sent, and nothing is
    written."""
    path, view = _desk_view(group)
    stored = api.get(path).json()
    assigned = {"system": "urn:tm:card", "value": "7", "assigner": {"reference": "#nobody"}}

    answers = []
    for hkid in (group.tm_patient.hkid, NEW_HKID):
        body = {**view, "identifier": [{"system": HKID_SYSTEM, "value": hkid}, assigned]}
        answers.append(group.call(group.desk_tm, "PUT", path, body))
    alone = group.call(group.desk_tm, "PUT", path, {**view, "identifier": [assigned]})

    for answer in answers:
        assert answer.status_code == 400, answer.text
        [issue] = answer.json()["issue"]
        assert issue["expression"] == ["Patient.identifier[1].assigner.reference"]
    assert answers[0].json() == answers[1].json()
    assert alone.status_code == 400, alone.text
    assert alone.json()["issue"][0]["expression"] == ["Patient.identifier[0].assigner.reference"]
    assert api.get(path).json() == stored


def _plant_dangling(group: Group, patient: str) -> dict[str, Any]:
    """The patient's record as one stored before ref-1 was judged might be: its HKID's
    assigner ``#org``, nothing contained (a bulk load of the system, whose checks this
    skips, writes it)."""
    gate = group.services.gate
    path = f"/fhir/Patient/{patient}"
    body = dict(group.call(group.doctor_tm, "GET", path).json())
    body.pop("meta")
    body["identifier"] = [
        {**item, "assigner": {"reference": "#org"}} if item.get("system") == HKID_SYSTEM else item
        for item in body["identifier"]
    ]
    rt = RESOURCE_TYPES["Patient"]
    gate.write(IMPORT_CALLER, [Put(rt, patient, body)], per_patient=True)
    return body


def test_a_record_stored_with_a_dangling_reference_stays_writable(
    group: Group, api: FhirTestClient
) -> None:
    patient = group.tm_patient.id
    planted = _plant_dangling(group, patient)
    path = f"/fhir/Patient/{patient}"

    # The desk, not shown the HKID that holds the reference, changes the gender.
    _, view = _desk_view(group)
    desk = group.call(group.desk_tm, "PUT", path, {**view, "gender": "other"})
    assert desk.status_code == 200, desk.text
    # The doctor, shown all of it, sends it back unchanged with another change.
    shown = group.call(group.doctor_tm, "GET", path).json()
    shown.pop("meta")
    doctor = group.call(group.doctor_tm, "PUT", path, {**shown, "gender": "female"})
    assert doctor.status_code == 200, doctor.text
    stored = api.get(path).json()
    assert stored["identifier"] == planted["identifier"]
    assert stored["gender"] == "female"
    # A dangling reference of his own is refused, by its place.
    extra = {"system": "urn:tm:card", "value": "8", "assigner": {"reference": "#nobody"}}
    again = group.call(group.doctor_tm, "GET", path).json()
    again.pop("meta")
    mine = group.call(
        group.doctor_tm, "PUT", path, {**again, "identifier": [*again["identifier"], extra]}
    )
    assert mine.status_code == 400, mine.text
    [issue] = mine.json()["issue"]
    assert issue["expression"] == [
        f"Patient.identifier[{len(again['identifier'])}].assigner.reference"
    ]


def _numbered_and_throttled(group: Group, api: FhirTestClient) -> str:
    """Tuen Mun's patient given record number TM-000777, and Tuen Mun's desk held by the
    registration throttle (six registrations of a number no one holds: the last 429);
    the patient's path."""
    path = f"/fhir/Patient/{group.tm_patient.id}"
    stored = api.get(path).json()
    stored.pop("meta")
    stored["identifier"].append({"system": MRN_SYSTEM, "value": "TM-000777"})
    assert api.put_json(path, stored).status_code == 200
    misses = [
        group.call(
            group.desk_tm, "POST", "/fhir/Patient/$register", register_body(NEW_HKID, "1990-01-01")
        ).status_code
        for _ in range(6)
    ]
    assert misses[-1] == 429, misses
    return path


def test_a_throttled_desk_saves_its_numbered_patient_but_not_a_new_number(
    group: Group, api: FhirTestClient
) -> None:
    path = _numbered_and_throttled(group, api)

    _, view = _desk_view(group)
    assert {"system": MRN_SYSTEM, "value": "TM-000777"} in view["identifier"]
    saved = group.call(group.desk_tm, "PUT", path, {**view, "gender": "other"})
    assert saved.status_code == 200, saved.text
    renumbered = [
        {**item, "value": "TM-000778"} if item.get("system") == MRN_SYSTEM else item
        for item in view["identifier"]
    ]
    held = group.call(group.desk_tm, "PUT", path, {**view, "identifier": renumbered})
    assert held.status_code == 429, held.text
    assert api.get(path).json()["gender"] == "other"


def test_validate_accepts_a_view_that_refers_to_what_the_gate_puts_back(
    group: Group, api: FhirTestClient
) -> None:
    """The desk's view of a visit shows ``location #room``; the Location, typed with a
    sensitive code, is cut from it. ``$validate`` of that view answers as its save does:
    no issue."""
    visit = visit_in_an_hiv_room(group, api)
    view = group.call(group.desk_tm, "GET", f"/fhir/Encounter/{visit}").json()
    assert "contained" not in view

    checked = group.call(group.desk_tm, "POST", "/fhir/Encounter/$validate", view)
    saved = group.call(group.desk_tm, "PUT", f"/fhir/Encounter/{visit}", view)

    assert checked.status_code == 200, checked.text
    assert [issue["severity"] for issue in checked.json()["issue"]] == ["information"]
    assert saved.status_code == 200, saved.text


def _as_token(group: Group, token: str, method: str, path: str, body: Any = None) -> Any:
    headers = {"authorization": f"Bearer {token}", **FHIR_JSON}
    content = None if body is None else json.dumps(body)
    return group.web.request(method, path, content=content, headers=headers)


def _write_only(group: Group, path: str) -> str:
    """A token of Tuen Mun's desk that may create and update patients, not read them."""
    token = open_token(group.services, group.desk_tm.account, "user/Patient.cu")
    assert _as_token(group, token, "GET", path).status_code == 403
    return token


def test_a_write_only_token_is_not_answered_by_the_record_numbers_it_holds(
    group: Group, api: FhirTestClient
) -> None:
    path = _numbered_and_throttled(group, api)
    token = _write_only(group, path)

    answers = {
        number: _as_token(
            group,
            token,
            "PUT",
            path,
            {
                "resourceType": "Patient",
                "id": group.tm_patient.id,
                "name": [{"family": "Chan"}],
                "identifier": [{"system": MRN_SYSTEM, "value": number}],
            },
        ).status_code
        for number in ("TM-000778", "TM-000777")
    }

    assert answers == {"TM-000778": 429, "TM-000777": 429}


def test_a_write_only_token_is_not_answered_by_the_references_the_record_holds(
    group: Group, api: FhirTestClient
) -> None:
    patient = group.tm_patient.id
    path = f"/fhir/Patient/{patient}"
    token = _write_only(group, path)
    body = {
        "resourceType": "Patient",
        "id": patient,
        "name": [{"family": "Chan"}],
        "generalPractitioner": [{"reference": "#gp"}],
    }
    answers = []
    for held in ("#gp", "Practitioner/dr-tm"):
        planted = api.get(path).json()
        planted.pop("meta")
        planted["generalPractitioner"] = [{"reference": held}]
        group.services.gate.write(
            IMPORT_CALLER, [Put(RESOURCE_TYPES["Patient"], patient, planted)], per_patient=True
        )
        answer = _as_token(group, token, "PUT", path, body)
        answers.append((answer.status_code, answer.json()["issue"]))

    assert answers[0] == answers[1]
    assert answers[0][0] == 400
    assert answers[0][1][0]["expression"] == ["Patient.generalPractitioner[0].reference"]


def test_validate_judges_a_labelled_body_with_no_id_as_its_create_does(group: Group) -> None:
    body = {
        **encounter(group.tm_patient.id, TM),
        "meta": {
            "security": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
                    "code": "SUBSETTED",
                }
            ]
        },
        "location": [{"location": {"reference": "#nothing"}}],
    }
    checked = group.call(group.desk_tm, "POST", "/fhir/Encounter/$validate", body)
    made = group.call(group.desk_tm, "POST", "/fhir/Encounter", body)

    assert made.status_code == 400, made.text
    assert [issue["severity"] for issue in checked.json()["issue"]] == ["error"]
    assert checked.json()["issue"] == made.json()["issue"]
