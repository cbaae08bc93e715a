"""Adversary round 57, registration through a person's other login: a doctor who broke
the glass for another clinic's patient, or to whom a referral opened one, registers the
patient at their clinic with what the record showed, through a front-desk login naming
the same practitioner; the clinic then holds the record for good (SQLite and
PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from tests.integration.access.group import (
    TM,
    TW,
    Group,
    build_group,
    referral,
    register_body,
)
from tests.support.client import FhirTestClient
from tests.support.staff import make_staff

pytestmark = pytest.mark.postgres

GLASS = {
    "resourceType": "Parameters",
    "parameter": [
        {"name": "reason", "valueString": "emergency-treatment"},
        {"name": "text", "valueString": "collapsed in the waiting room"},
    ],
}


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def test_a_glass_grant_is_not_registered_through_the_doctors_desk_login(group: Group) -> None:
    """Tuen Mun's doctor breaks the glass for Tsuen Wan's patient and reads the HKID and
    birth date; their own ``$register`` is refused (round 30). Their front-desk login,
    naming the same Practitioner, registered the patient at Tuen Mun with them (200)."""
    patient = group.tw_patient
    desk_login = make_staff(group.services, Role.FRONT_DESK, [TM], "dr-tm")
    granted = group.call(group.doctor_tm, "POST", f"/fhir/Patient/{patient.id}/$break-glass", GLASS)
    assert granted.status_code == 200, granted.text
    shown = group.call(group.doctor_tm, "GET", f"/fhir/Patient/{patient.id}").json()
    body = register_body(shown["identifier"][0]["value"], shown["birthDate"])
    registered = group.call(desk_login, "POST", "/fhir/Patient/$register", body)
    assert registered.status_code == 403, registered.text
    assert "glass" in registered.json()["issue"][0]["diagnostics"]
    assert group.call(group.desk_tm, "GET", f"/fhir/Patient/{patient.id}").status_code == 403
    # Held: the clinic's desk, someone else, who sees the patient present, registers them.
    at_desk = group.call(group.desk_tm, "POST", "/fhir/Patient/$register", body)
    assert at_desk.status_code == 200, at_desk.text


def test_a_referral_is_not_registered_through_the_doctors_desk_login(group: Group) -> None:
    """Tuen Mun's doctor refers their patient to Tsuen Wan's doctor, who reads the HKID
    and birth date; Tsuen Wan's doctor may not register the patient (round 30), but their
    front-desk login at Tsuen Wan, naming the same Practitioner, did."""
    patient = group.tm_patient
    desk_login = make_staff(group.services, Role.FRONT_DESK, [TW], "dr-tw")
    sent = group.call(
        group.doctor_tm, "POST", "/fhir/ServiceRequest", referral(patient.id, "Practitioner/dr-tw")
    )
    assert sent.status_code == 201, sent.text
    shown = group.call(group.doctor_tw, "GET", f"/fhir/Patient/{patient.id}").json()
    body = register_body(shown["identifier"][0]["value"], shown["birthDate"])
    registered = group.call(desk_login, "POST", "/fhir/Patient/$register", body)
    assert registered.status_code == 403, registered.text
    assert group.call(group.desk_tw, "GET", f"/fhir/Patient/{patient.id}").status_code == 403
    at_desk = group.call(group.desk_tw, "POST", "/fhir/Patient/$register", body)
    assert at_desk.status_code == 200, at_desk.text


def test_a_persons_two_logins_share_one_allowance_of_registration_guesses(
    group: Group,
) -> None:
    """A person with a front-desk and a nurse login at Tuen Mun (both naming
    Practitioner dr-tm2) guesses Tsuen Wan's patient's birth date with ``$register``: five
    misses with the desk login, then five more with the nurse login, each login counted
    alone; the throttle counts a person as the release budget does."""
    patient = group.tw_patient
    desk_login = make_staff(group.services, Role.FRONT_DESK, [TM], "dr-tm2")
    nurse_login = make_staff(group.services, Role.NURSE, [TM], "dr-tm2")
    guesses = [
        group.call(
            who,
            "POST",
            "/fhir/Patient/$register",
            register_body(patient.hkid, f"1982-11-{n + 3:02d}"),
        ).status_code
        for n, who in enumerate([desk_login] * 5 + [nurse_login] * 2)
    ]
    assert guesses == [404] * 5 + [429] * 2, guesses
    # Held: someone else keeps their own allowance.
    other = group.call(
        group.desk_tm, "POST", "/fhir/Patient/$register", register_body(patient.hkid, "1982-12-01")
    )
    assert other.status_code == 404, other.text


def test_a_booking_deleted_is_not_written_again_for_another_patient(group: Group) -> None:
    """Held: Tsuen Wan's desk books its own patient, deletes the booking and writes the
    same id again as a booking of a patient registered at both clinics (registered at
    Tsuen Wan by its desk, on proof of presence), whom Tuen Mun's desk may read: refused
    as a move to another patient (403), so no history mixes two patients' versions."""
    from tests.integration.access.group import booked_today

    tw_only = group.tw_patient
    shared = group.tm_patient
    body = register_body(shared.hkid, shared.birth_date, TW)
    assert group.call(group.desk_tw, "POST", "/fhir/Patient/$register", body).status_code == 200
    made = group.call(group.desk_tw, "POST", "/fhir/Appointment", booked_today(tw_only.id, TW))
    assert made.status_code == 201, made.text
    booking = made.json()["id"]
    assert group.call(group.desk_tw, "DELETE", f"/fhir/Appointment/{booking}").status_code == 204
    again = {**booked_today(shared.id, TW), "id": booking}
    written = group.call(group.desk_tw, "PUT", f"/fhir/Appointment/{booking}", again)
    assert written.status_code == 403, written.text
    assert "another patient" in written.text
    assert group.call(group.desk_tw, "GET", f"/fhir/Appointment/{booking}").status_code == 410
    assert group.call(group.desk_tm, "GET", f"/fhir/Appointment/{booking}").status_code in (
        403,
        404,
    )
