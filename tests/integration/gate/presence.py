"""What the tests of a registration on first presence share: a newcomer's proof, the
patient Tuen Mun's desk plants under it, and the steps each clinic takes."""

from __future__ import annotations

from typing import Any

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

#: A valid HKID no patient of the group holds, and the birth date of its holder.
NEW_HKID, NEW_BORN = "K654321(9)", "1990-01-01"


#: The newcomer, as a desk types them.
NEWCOMER = {
    "resourceType": "Patient",
    "name": [{"family": "Yip"}],
    "birthDate": NEW_BORN,
    "identifier": [{"system": HKID_SYSTEM, "value": NEW_HKID}],
}


def planted(group: Group) -> str:
    """A patient Tuen Mun's desk writes under the newcomer's HKID and birth date."""
    made = group.call(group.desk_tm, "POST", "/fhir/Patient", NEWCOMER)
    assert made.status_code == 201, made.text
    assert made.json()["managingOrganization"] == {"reference": f"Organization/{TM}"}
    return str(made.json()["id"])


def registered_at_tsuen_wan(group: Group, hkid: str = NEW_HKID, born: str = NEW_BORN) -> Any:
    """Tsuen Wan's desk registers whoever shows ``hkid`` and ``born`` (200)."""
    answer = group.call(group.desk_tw, "POST", "/fhir/Patient/$register", register_body(hkid, born))
    assert answer.status_code == 200, answer.text
    return answer


def tsuen_wan_records_a_result(group: Group, patient: str) -> str:
    """Tsuen Wan's doctor records a visit and an HIV result; the result's id."""
    visit = group.call(group.doctor_tw, "POST", "/fhir/Encounter", encounter(patient, TW, "dr-tw"))
    assert visit.status_code == 201, visit.text
    result = group.call(
        group.doctor_tw, "POST", "/fhir/Observation", observation(patient, "HIV-1 RNA 20000")
    )
    assert result.status_code == 201, result.text
    return str(result.json()["id"])


def booked_at_tuen_mun(group: Group, patient: str) -> str:
    """Tuen Mun's desk books the patient with its doctor; the booking's id."""
    booked = group.call(
        group.desk_tm, "POST", "/fhir/Appointment", booked_today(patient, TM, "dr-tm")
    )
    assert booked.status_code == 201, booked.text
    return str(booked.json()["id"])


def seen_with_a_reason(group: Group, patient: str) -> str:
    """Booked at Tuen Mun, and seen by its doctor, who records the visit with its reason
    (health data in a visit); the visit's id."""
    booked_at_tuen_mun(group, patient)
    visit = encounter(patient, TM, "dr-tm")
    visit["reasonCode"] = [{"text": "chest pain"}]
    made = group.call(group.doctor_tm, "POST", "/fhir/Encounter", visit)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def retyped(group: Group, patient: str, hkid: str = NEW_HKID, born: str = NEW_BORN) -> None:
    """Tuen Mun's desk saves its view of the patient with ``hkid`` and ``born`` typed in."""
    path = f"/fhir/Patient/{patient}"
    shown = group.call(group.desk_tm, "GET", path).json()
    body = {key: value for key, value in shown.items() if key != "meta"}
    body["identifier"] = [{"system": HKID_SYSTEM, "value": hkid}]
    body["birthDate"] = born
    saved = group.call(group.desk_tm, "PUT", path, body)
    assert saved.status_code == 200, saved.text


def second_number_beside(group: Group, patient: str) -> None:
    """Tuen Mun's desk saves its view of the patient with the newcomer's HKID added as a
    second identifier (the one it was not shown is kept) and the newcomer's birth date."""
    path = f"/fhir/Patient/{patient}"
    shown = group.call(group.desk_tm, "GET", path).json()
    body = {key: value for key, value in shown.items() if key != "meta"}
    body["identifier"] = [*body.get("identifier", []), {"system": HKID_SYSTEM, "value": NEW_HKID}]
    body["birthDate"] = NEW_BORN
    saved = group.call(group.desk_tm, "PUT", path, body)
    assert saved.status_code == 200, saved.text


def clinics(group: Group, patient: str) -> frozenset[str]:
    """Where the patient is registered, their home included: read afresh, past the
    answers these services keep (a command with services of its own registered them)."""
    access = group.services.access
    assert access is not None
    pseudonym = group.services.vault.patient_pseudonyms([patient])[patient]
    with group.services.vault.engine.connect() as connection:
        return access.registrations.clinics(pseudonym, connection)
