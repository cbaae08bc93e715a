"""``$register`` of a patient no one has recorded seeing: the first clinic where the
person stands and proves who they are becomes their home, and every other tie ends
(adversary round 79's planted patient; ``gate.registration._register_first_presence``).

Tuen Mun's desk writes a patient under the HKID and birth date of someone who has never
attended the group, and may book them; the person first comes to Tsuen Wan, whose desk
registers that record as told. What Tsuen Wan then records is not Tuen Mun's to read,
as it would not be had Tsuen Wan's desk written a record of its own: Tuen Mun registers
the person when they come (a registration the ledger and the detectors weigh). A record
anyone has seen the person in (a clinician's, billing's, the system's) keeps its ties,
as before (SQLite and PostgreSQL).
"""

from __future__ import annotations

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
    booked_today,
    build_group,
    encounter,
    observation,
    register_body,
)
from tests.support.client import FhirTestClient

pytestmark = pytest.mark.postgres

#: A valid HKID no patient of the group holds, and the birth date of its holder.
NEW_HKID, NEW_BORN = "K654321(9)", "1990-01-01"


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _planted(group: Group) -> str:
    """A patient Tuen Mun's desk writes under the newcomer's HKID and birth date."""
    body = {
        "resourceType": "Patient",
        "name": [{"family": "Yip"}],
        "birthDate": NEW_BORN,
        "identifier": [{"system": HKID_SYSTEM, "value": NEW_HKID}],
    }
    made = group.call(group.desk_tm, "POST", "/fhir/Patient", body)
    assert made.status_code == 201, made.text
    assert made.json()["managingOrganization"] == {"reference": f"Organization/{TM}"}
    return str(made.json()["id"])


def _registered_at_tsuen_wan(group: Group) -> Any:
    answer = group.call(
        group.desk_tw, "POST", "/fhir/Patient/$register", register_body(NEW_HKID, NEW_BORN)
    )
    assert answer.status_code == 200, answer.text
    return answer


def _tsuen_wan_records_a_result(group: Group, patient: str) -> str:
    visit = group.call(group.doctor_tw, "POST", "/fhir/Encounter", encounter(patient, TW, "dr-tw"))
    assert visit.status_code == 201, visit.text
    result = group.call(
        group.doctor_tw, "POST", "/fhir/Observation", observation(patient, "HIV-1 RNA 20000")
    )
    assert result.status_code == 201, result.text
    return str(result.json()["id"])


def _principal(group: Group) -> str:
    return f"staff:{group.desk_tw.account.username}"


def _clinics(group: Group, patient: str) -> frozenset[str]:
    access = group.services.access
    assert access is not None
    pseudonym = group.services.vault.patient_pseudonyms([patient])[patient]
    return access.registrations.clinics(pseudonym)


def test_a_record_booked_at_the_clinic_that_wrote_it_does_not_catch_what_the_first_clinic_records(
    group: Group,
) -> None:
    """The insider books the planted patient with its doctor first (care at Tuen Mun
    for the booking's window), then the person comes to Tsuen Wan. The registration ends
    Tuen Mun's tie and the care its booking opened: Tuen Mun's doctor is refused what
    Tsuen Wan records (403), and the booking opens nothing when written again."""
    patient = _planted(group)
    booked = group.call(
        group.desk_tm, "POST", "/fhir/Appointment", booked_today(patient, TM, "dr-tm")
    )
    assert booked.status_code == 201, booked.text
    assert group.call(group.doctor_tm, "GET", f"/fhir/Patient/{patient}").status_code == 200

    _registered_at_tsuen_wan(group)
    result = _tsuen_wan_records_a_result(group, patient)

    assert _clinics(group, patient) == {TW}
    assert group.call(group.doctor_tm, "GET", f"/fhir/Observation/{result}").status_code == 403
    assert group.call(group.doctor_tm, "GET", f"/fhir/Patient/{patient}").status_code == 403
    rebooked = group.call(
        group.desk_tm, "POST", "/fhir/Appointment", booked_today(patient, TM, "dr-tm")
    )
    assert rebooked.status_code == 201, rebooked.text
    first = booked.json()["id"]
    moved = {**booked_today(patient, TM, "dr-tm"), "id": first, "comment": "moved"}
    again = group.call(group.desk_tm, "PUT", f"/fhir/Appointment/{first}", moved)
    assert again.status_code == 200, again.text
    assert group.call(group.doctor_tm, "GET", f"/fhir/Observation/{result}").status_code == 403


def test_the_registration_moves_the_home_and_says_so_in_the_ledger(group: Group) -> None:
    """The registering desk reads the patient as its clinic's; the record's new version
    names Tsuen Wan as its home; the ledger holds the registration (why, where from)
    and the Patient's update by the desk that made it, in the same transaction."""
    patient = _planted(group)

    answer = _registered_at_tsuen_wan(group)

    assert answer.json()["id"] == patient
    assert answer.json()["managingOrganization"] == {"reference": f"Organization/{TW}"}
    assert answer.json()["meta"]["versionId"] == "2"
    [registered] = [
        event
        for event in group.events(Tag.PATIENT_REGISTERED)
        if event.resource_id == patient and event.outcome == Outcome.SUCCESS
    ]
    assert registered.reason.startswith("registered on first proof of presence")
    assert registered.detail["home_from"] == TM
    assert registered.detail["clinic"] == TW
    assert registered.principal == _principal(group)
    [updated] = [
        event
        for event in group.events(Tag.FHIR_UPDATE)
        if event.resource_id == patient and event.principal == _principal(group)
    ]
    assert updated.detail["version"] == 2
    assert updated.patient_pseudonym == registered.patient_pseudonym


def test_the_clinic_that_wrote_the_record_registers_the_person_when_they_come(
    group: Group,
) -> None:
    """The honest case the rule costs something: a patient Tuen Mun's desk wrote (a
    booking by telephone) goes to Tsuen Wan first. When they come to Tuen Mun, its desk
    registers them on the number and birth date they show; Tuen Mun's doctor, with a
    visit, reads what Tsuen Wan recorded, as for any patient registered at two clinics."""
    patient = _planted(group)
    _registered_at_tsuen_wan(group)
    result = _tsuen_wan_records_a_result(group, patient)
    assert group.call(group.desk_tm, "GET", f"/fhir/Patient/{patient}").status_code == 403

    again = group.call(
        group.desk_tm, "POST", "/fhir/Patient/$register", register_body(NEW_HKID, NEW_BORN)
    )

    assert again.status_code == 200, again.text
    assert _clinics(group, patient) == {TM, TW}
    assert again.json()["managingOrganization"] == {"reference": f"Organization/{TW}"}
    visit = group.call(group.doctor_tm, "POST", "/fhir/Encounter", encounter(patient, TM, "dr-tm"))
    assert visit.status_code == 201, visit.text
    assert group.call(group.doctor_tm, "GET", f"/fhir/Observation/{result}").status_code == 200


def test_guard_a_patient_seen_at_their_clinic_keeps_it_when_registered_elsewhere(
    group: Group,
) -> None:
    """Tuen Mun's patient, seen there (a visit and an observation, written by the
    system), registers at Tsuen Wan: Tuen Mun stays their home and its doctor still
    reads their result; only the registration is added."""
    patient = group.tm_patient
    answer = group.call(
        group.desk_tw,
        "POST",
        "/fhir/Patient/$register",
        register_body(patient.hkid, patient.birth_date),
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["managingOrganization"] == {"reference": f"Organization/{TM}"}
    assert _clinics(group, patient.id) == {TM, TW}
    read = group.call(group.doctor_tm, "GET", f"/fhir/Observation/{patient.observation}")
    assert read.status_code == 200
    history = group.call(group.doctor_tm, "GET", f"/fhir/Patient/{patient.id}/_history")
    assert history.json()["total"] == 1


def test_guard_a_clinicians_record_keeps_the_ties_of_a_record_a_desk_wrote(
    group: Group,
) -> None:
    """A patient Tuen Mun's desk wrote and its doctor then saw (an observation of his,
    on a booking): registered at Tsuen Wan, they stay Tuen Mun's too."""
    patient = _planted(group)
    booked = group.call(
        group.desk_tm, "POST", "/fhir/Appointment", booked_today(patient, TM, "dr-tm")
    )
    assert booked.status_code == 201, booked.text
    seen = group.call(group.doctor_tm, "POST", "/fhir/Observation", observation(patient))
    assert seen.status_code == 201, seen.text

    answer = _registered_at_tsuen_wan(group)

    assert answer.json()["managingOrganization"] == {"reference": f"Organization/{TM}"}
    assert _clinics(group, patient) == {TM, TW}
    result = _tsuen_wan_records_a_result(group, patient)
    assert group.call(group.doctor_tm, "GET", f"/fhir/Observation/{result}").status_code == 200


def test_a_desk_registering_its_own_clinics_patient_again_changes_nothing(group: Group) -> None:
    """Tuen Mun's desk registers the patient it wrote at Tuen Mun: already its clinic's
    (a counted miss, as before); the home does not move and nothing ends."""
    patient = _planted(group)

    again = group.call(
        group.desk_tm, "POST", "/fhir/Patient/$register", register_body(NEW_HKID, NEW_BORN)
    )

    assert again.status_code == 200, again.text
    assert _clinics(group, patient) == {TM}
    history = group.call(group.doctor_tm, "GET", f"/fhir/Patient/{patient}/_history")
    assert history.json()["total"] == 1
