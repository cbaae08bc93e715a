"""Adversary round 50: writes that widen access (SQLite and PostgreSQL).

A doctor of Tsuen Wan to whom Tuen Mun's doctor referred a patient (or whom a care team
named) read the patient's HKID and birth date. ``$register`` refuses him while the care
that opened the record to him stands (stop 30: what the record showed proves no
presence). But the referral ends in the ordinary course: the referrer marks it
completed, or the doctor referred to (who may write the patient's health record while
the referral lasts) marks it completed or revoked, or deletes it. That cleared the
relationship rows ``care.ever`` looked at, and the doctor then registered the patient
at Tsuen Wan with what the record had shown him; a visit there opened the record to
every clinician of Tsuen Wan, for good. What was opened to a clinician from elsewhere
is remembered when its record ends.
"""

from __future__ import annotations

from typing import Any

import pytest

from carevault.domain.roles import Role
from tests.integration.access.group import (
    TW,
    Group,
    care_team,
    encounter,
    referral,
    register_body,
)
from tests.support.staff import make_staff

#: How the record that vouched for Tsuen Wan's doctor ends, and who ends it.
ENDINGS = ("completed by the referrer", "completed", "revoked", "deleted", "team inactive")


def _vouch(group: Group, ending: str) -> tuple[str, dict[str, Any]]:
    """Tuen Mun's doctor vouches for Tsuen Wan's doctor: the record's path and body."""
    patient = group.tm_patient.id
    body = (
        care_team(patient, "dr-tw")
        if ending == "team inactive"
        else referral(patient, "Practitioner/dr-tw")
    )
    kind = body["resourceType"]
    sent = group.call(group.doctor_tm, "POST", f"/fhir/{kind}", body)
    assert sent.status_code == 201, sent.text
    record = sent.json()["id"]
    return f"/fhir/{kind}/{record}", {**body, "id": record}


def _end(group: Group, ending: str, path: str, body: dict[str, Any]) -> None:
    if ending == "deleted":
        # The doctor referred to may end the referral, not delete Tuen Mun's record of it
        # (a record is deleted by staff of a clinic it belongs to: adversary round 64);
        # the referrer deletes it.
        assert group.call(group.doctor_tw, "DELETE", path).status_code == 403
        ended = group.call(group.doctor_tm, "DELETE", path)
    elif ending == "completed by the referrer":
        ended = group.call(group.doctor_tm, "PUT", path, {**body, "status": "completed"})
    elif ending == "team inactive":
        ended = group.call(group.doctor_tw, "PUT", path, {**body, "status": "inactive"})
    else:
        ended = group.call(group.doctor_tw, "PUT", path, {**body, "status": ending})
    assert ended.status_code in (200, 201, 204), ended.text


@pytest.mark.parametrize("ending", ENDINGS)
def test_care_vouched_from_elsewhere_is_no_proof_of_presence_once_its_record_ends(
    group: Group, ending: str
) -> None:
    patient = group.tm_patient
    path, body = _vouch(group, ending)
    shown = group.call(group.doctor_tw, "GET", f"/fhir/Patient/{patient.id}").json()
    hkid, born = shown["identifier"][0]["value"], shown["birthDate"]
    _end(group, ending, path, body)
    # The referral or care team opens nothing any more.
    assert group.call(group.doctor_tw, "GET", f"/fhir/Patient/{patient.id}").status_code == 403

    registered = group.call(
        group.doctor_tw, "POST", "/fhir/Patient/$register", register_body(hkid, born)
    )
    nurse_tw = make_staff(group.services, Role.NURSE, [TW])
    by_colleague = group.call(
        nurse_tw, "POST", "/fhir/Patient/$register", register_body(hkid, born)
    )
    group.call(group.doctor_tw, "POST", "/fhir/Encounter", encounter(patient.id, TW, "dr-tw"))

    assert registered.status_code == 403, registered.text
    assert "opened to you by care from another clinic" in registered.text
    # Opened to Tsuen Wan's doctor alone: his clinic's nurse was never shown the record.
    assert by_colleague.status_code == 200, by_colleague.text
    # Tuen Mun's own clinicians, to whom nothing was vouched, are as before.
    assert group.call(group.doctor_tm, "GET", f"/fhir/Patient/{patient.id}").status_code == 200


def test_a_referral_to_a_clinic_that_ended_still_bars_its_clinicians_from_registering(
    group: Group,
) -> None:
    """A referral to Tsuen Wan (the clinic) opened the record to each of its
    clinicians: none of them registers the patient with what it showed, once the
    referral is completed either."""
    patient = group.tm_patient
    body = referral(patient.id, f"Organization/{TW}")
    sent = group.call(group.doctor_tm, "POST", "/fhir/ServiceRequest", body)
    assert sent.status_code == 201, sent.text
    path = f"/fhir/ServiceRequest/{sent.json()['id']}"
    shown = group.call(group.doctor_tw, "GET", f"/fhir/Patient/{patient.id}").json()
    hkid, born = shown["identifier"][0]["value"], shown["birthDate"]
    done = {**body, "id": sent.json()["id"], "status": "completed"}
    assert group.call(group.doctor_tm, "PUT", path, done).status_code == 200

    registered = group.call(
        group.doctor_tw, "POST", "/fhir/Patient/$register", register_body(hkid, born)
    )

    assert registered.status_code == 403, registered.text


def test_a_care_team_saved_again_vouches_for_its_people_once(group: Group) -> None:
    """Whom a record vouched for is kept once (review: a care team saved day after day
    added its members again each time, for good)."""
    from sqlalchemy import func, select

    from carevault.access.tables import care_vouched
    from carevault.db import read_transaction

    path, body = _vouch(group, "team inactive")
    for _ in range(3):
        saved = group.call(group.doctor_tm, "PUT", path, body)
        assert saved.status_code == 200, saved.text
    with read_transaction(group.services.engine) as connection:
        count = connection.execute(select(func.count()).select_from(care_vouched)).scalar_one()
    assert count == 1
