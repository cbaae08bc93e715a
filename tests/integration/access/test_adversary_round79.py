"""Adversary round 79: an insider of Tuen Mun (its desk and its doctor) tries to widen what
the clinic may read through writes: Bundles mixing ``urn:uuid:`` creates with writes of
another clinic's records, identifiers written blind, and a patient record written before
the person it names ever attends (SQLite and PostgreSQL).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.integration.access.group import (
    HKID_SYSTEM,
    TM,
    TW,
    Group,
    booked_today,
    encounter,
    observation,
    register_body,
)
from tests.integration.gate.presence import NEW_BORN, NEW_HKID, NEWCOMER

pytestmark = pytest.mark.postgres


def _identifiers(group: Group, patient: str) -> list[dict[str, Any]]:
    """The patient's identifiers as Tuen Mun's doctor reads them (he may read HKIDs)."""
    read = group.call(group.doctor_tm, "GET", f"/fhir/Patient/{patient}")
    assert read.status_code == 200, read.text
    found: list[dict[str, Any]] = read.json().get("identifier", [])
    return found


def _desk_puts_hkid(group: Group, hkid: str) -> Any:
    """Tuen Mun's desk saves its view of its patient back with ``hkid`` typed in."""
    path = f"/fhir/Patient/{group.tm_patient.id}"
    seen = group.call(group.desk_tm, "GET", path).json()
    body = {key: value for key, value in seen.items() if key != "meta"}
    body["identifier"] = [{"system": HKID_SYSTEM, "value": hkid}]
    return group.call(group.desk_tm, "PUT", path, body)


def _shown(answer: Any) -> dict[str, Any]:
    body: dict[str, Any] = answer.json()
    return {key: value for key, value in body.items() if key != "meta"}


def test_a_desk_typing_its_patients_hkid_again_stores_it_once_and_learns_nothing(
    group: Group,
) -> None:
    """Found this round: the desk may write an HKID but not read one, so an update keeps
    the number it was not shown and adds what it sends; the number it typed again was
    stored a second time (and a third, each save). FAILS on main (the doctor read the
    number twice). Now a number sent that the record holds is kept once, another is
    added beside it; the desk's answers for the right number and a wrong one are alike
    (200, the same view without numbers), as before."""
    held = {"system": HKID_SYSTEM, "value": group.tm_patient.hkid}

    again = _desk_puts_hkid(group, group.tm_patient.hkid)
    assert again.status_code == 200, again.text
    assert _identifiers(group, group.tm_patient.id) == [held]

    other = _desk_puts_hkid(group, NEW_HKID)
    assert other.status_code == 200, other.text
    assert _identifiers(group, group.tm_patient.id) == [
        held,
        {"system": HKID_SYSTEM, "value": NEW_HKID},
    ]
    assert _shown(again) == _shown(other)
    assert "identifier" not in again.json()


def test_guard_a_transaction_creating_a_patient_cannot_carry_a_write_of_another_clinics_record(
    group: Group,
) -> None:
    """Tuen Mun's doctor sends one transaction: a new patient of his clinic (``urn:uuid``),
    a visit of that patient with him, and Tsuen Wan's patient's observation put back
    under the new patient. Refused whole (403), nothing written: the new patient is not
    there, and Tsuen Wan's observation is unchanged and still refused to him."""
    before = group.call(group.doctor_tw, "GET", f"/fhir/Observation/{group.tw_patient.observation}")
    urn = f"urn:uuid:{uuid.uuid4()}"
    visit = encounter("x", TM, "dr-tm")
    visit["subject"] = {"reference": urn}
    moved = {**observation("x"), "id": group.tw_patient.observation, "subject": {"reference": urn}}
    entries = [
        {
            "fullUrl": urn,
            "resource": {
                "resourceType": "Patient",
                "name": [{"family": "Round79"}],
                "managingOrganization": {"reference": f"Organization/{TM}"},
            },
            "request": {"method": "POST", "url": "Patient"},
        },
        {"resource": visit, "request": {"method": "POST", "url": "Encounter"}},
        {
            "resource": moved,
            "request": {"method": "PUT", "url": f"Observation/{group.tw_patient.observation}"},
        },
    ]

    answer = group.call(
        group.doctor_tm,
        "POST",
        "/fhir",
        {"resourceType": "Bundle", "type": "transaction", "entry": entries},
    )

    assert answer.status_code == 403, answer.text
    assert group.call(group.desk_tm, "GET", "/fhir/Patient?family=Round79").json()["total"] == 0
    after = group.call(group.doctor_tw, "GET", f"/fhir/Observation/{group.tw_patient.observation}")
    assert after.json() == before.json()
    refused = group.call(
        group.doctor_tm, "GET", f"/fhir/Observation/{group.tw_patient.observation}"
    )
    assert refused.status_code == 403


def test_a_patient_planted_under_a_newcomers_hkid_does_not_catch_what_another_clinic_records(
    group: Group,
) -> None:
    """Tuen Mun's desk writes a patient with the HKID and birth date of someone who has
    never attended the group (known to the insider: a relative, a public figure). When
    that person first comes to Tsuen Wan, its desk is refused a record of its own (409,
    "register the patient ... with Patient/$register") and registers Tuen Mun's record,
    as told; Tsuen Wan's doctor then records the visit and a result in it. Tuen Mun's
    desk books its doctor, who read the result (200; a strict xfail until stop 62): a
    record the insider wrote opened to its clinic what another clinic recorded of a
    person it never saw. Now a registration of a patient no one has recorded seeing
    moves their home to the registering clinic and ends the other ties
    (``gate/test_registration_first_presence.py``): 403."""
    newcomer = NEWCOMER
    planted = group.call(group.desk_tm, "POST", "/fhir/Patient", newcomer)
    assert planted.status_code == 201, planted.text
    patient = planted.json()["id"]
    own = group.call(group.desk_tw, "POST", "/fhir/Patient", newcomer)
    assert own.status_code == 409, own.text
    assert patient not in own.text and "Yip" not in own.text
    registered = group.call(
        group.desk_tw, "POST", "/fhir/Patient/$register", register_body(NEW_HKID, NEW_BORN)
    )
    assert registered.status_code == 200, registered.text
    visit = group.call(group.doctor_tw, "POST", "/fhir/Encounter", encounter(patient, TW, "dr-tw"))
    assert visit.status_code == 201, visit.text
    result = group.call(
        group.doctor_tw, "POST", "/fhir/Observation", observation(patient, "HIV-1 RNA 20000")
    )
    assert result.status_code == 201, result.text
    booked = group.call(
        group.desk_tm, "POST", "/fhir/Appointment", booked_today(patient, TM, "dr-tm")
    )
    assert booked.status_code == 201, booked.text

    read = group.call(group.doctor_tm, "GET", f"/fhir/Observation/{result.json()['id']}")

    assert read.status_code == 403, read.text


MRN_SYSTEM = "http://carevault.hk/sid/mrn"


def _by_mrn(number: str, born: str) -> dict[str, Any]:
    """A ``Patient/$register`` body proving presence by a medical record number."""
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "identifier", "valueIdentifier": {"system": MRN_SYSTEM, "value": number}},
            {"name": "birthDate", "valueDate": born},
        ],
    }


def test_a_desk_cannot_give_its_decoy_another_clinics_patients_record_number(
    group: Group, api: Any
) -> None:
    """Found this round: ``$register`` takes a medical record number as proof beside the
    HKID, but only an HKID held by another clinic's patient refused a write. Tuen Mun's
    desk wrote a decoy with Tsuen Wan's patient's number and birth date (201), and every
    registration by that number answered 409 "more than one patient matches; ask the
    privacy officer to merge them", the harm the HKID rule had closed. FAILS on main.
    Now refused as an HKID twin is (409, naming nothing of the holder, counted as a
    failed registration); a number no one holds is written as before, and Tsuen Wan's
    desk still finds its patient by it."""
    tw = group.tw_patient
    stored = group.call(group.doctor_tw, "GET", f"/fhir/Patient/{tw.id}").json()
    stored.pop("meta")
    stored["identifier"].append({"system": MRN_SYSTEM, "value": "TW-000123"})
    assert api.put_json(f"/fhir/Patient/{tw.id}", stored).status_code == 200

    def decoy(number: str) -> Any:
        body = {
            "resourceType": "Patient",
            "name": [{"family": "Decoy"}],
            "birthDate": tw.birth_date,
            "identifier": [{"system": MRN_SYSTEM, "value": number}],
        }
        return group.call(group.desk_tm, "POST", "/fhir/Patient", body)

    twin = decoy("TW-000123")
    assert twin.status_code == 409, twin.text
    assert tw.id not in twin.text and "Lee" not in twin.text
    assert group.call(group.desk_tm, "GET", "/fhir/Patient?family=Decoy").json()["total"] == 0
    assert decoy("TM-999999").status_code == 201

    found = group.call(
        group.desk_tw, "POST", "/fhir/Patient/$register", _by_mrn("TW-000123", tw.birth_date)
    )
    assert found.status_code == 200, found.text
    assert found.json()["id"] == tw.id
