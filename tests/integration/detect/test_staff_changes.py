"""A member of staff changing many patients' stored records in minutes (SQLite and
PostgreSQL). A blind PUT reads nothing back, so neither the release budget nor the
reading detectors see it: a front desk replacing the phone number of every patient of
the clinic (where breach notices and verification codes go) raised nothing until
``staff-changes`` counted the distinct patients whose records one account changed in
ten minutes. New records (registrations) do not count; new care does (a booking opens
the patient's record to the rest of the clinic), but for a patient the account itself
registered."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from carevault.detect import alerts_as_dicts
from carevault.domain.roles import Role
from tests.integration.detect.conftest import Clinic, clinic_patients, raising_clinic
from tests.integration.detect.test_vip_near_care import _booking
from tests.support.staff import Staff, make_staff

PATIENTS = 90


@pytest.fixture
def many(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    """Clinic A with 90 patients, registered by its front desk (41 registrations in ten
    minutes raise nothing: new records are not changes), detectors raising only."""
    with raising_clinic(backend, tmp_path, request, clinic_patients(PATIENTS)) as opened:
        yield opened


def _rewrite(clinic: Clinic, who: Staff, patient: str) -> int:
    """A blind PUT of ``patient`` with another phone number: nothing is read back."""
    body: dict[str, Any] = {
        "resourceType": "Patient",
        "id": patient,
        "telecom": [{"system": "phone", "value": "+852 6000 0000"}],
        "managingOrganization": {"reference": "Organization/clinic-a"},
    }
    headers = {**who.headers, "content-type": "application/fhir+json", "prefer": "return=minimal"}
    return int(
        clinic.web.put(
            f"/fhir/Patient/{patient}", content=json.dumps(body), headers=headers
        ).status_code
    )


def _changes_alerts(clinic: Clinic, who: Staff) -> list[dict[str, Any]]:
    return [
        alert
        for alert in alerts_as_dicts(clinic.services)
        if alert["account"] == who.account.username and alert["detector"] == "staff-changes"
    ]


def test_a_desk_rewriting_every_patients_phone_number_raises_an_alert(many: Clinic) -> None:
    assert alerts_as_dicts(many.services) == []  # the registrations raised nothing
    thief = make_staff(many.services, Role.FRONT_DESK, ["clinic-a"])
    changed = [_rewrite(many, thief, patient) for patient in many.patients]
    assert changed == [200] * PATIENTS

    (alert,) = _changes_alerts(many, thief)
    assert alert["severity"] == "high"  # 90 patients: more than twice the 40 allowed
    assert "distinct patients in ten minutes" in alert["explanation"]
    assert alert["patient_count"] == PATIENTS


def test_forty_changes_in_ten_minutes_raise_nothing(many: Clinic) -> None:
    nurse = make_staff(many.services, Role.NURSE, ["clinic-a"])
    # The same patient changed again and again is one patient.
    for _ in range(2):
        assert [_rewrite(many, nurse, patient) for patient in many.patients[:40]] == [200] * 40
    assert _changes_alerts(many, nurse) == []
    # Ten minutes later the window has moved on: forty more are forty again.
    many.clock.advance(seconds=601)
    assert [_rewrite(many, nurse, patient) for patient in many.patients[40:80]] == [200] * 40
    assert _changes_alerts(many, nurse) == []
    assert _rewrite(many, nurse, many.patients[40]) == 200
    assert _changes_alerts(many, nurse) == []
    assert _rewrite(many, nurse, many.patients[0]) == 200  # the 41st in ten minutes
    (alert,) = _changes_alerts(many, nurse)
    assert alert["severity"] == "medium"


def test_the_default_response_pauses_the_rewrite_within_the_limit(clinic: Clinic) -> None:
    """With the default policy a medium alert pauses the account's sessions (step-up):
    the rewrite stops at the 41st patient and the rest keep their numbers."""
    thief = make_staff(clinic.services, Role.FRONT_DESK, ["clinic-a"])
    detection = clinic.services.detection
    assert detection is not None
    changed = []
    for patient in clinic.patients:
        changed.append(_rewrite(clinic, thief, patient))
        # What the server's detection thread does a few times a second.
        detection.engine.catch_up()
    assert changed.count(200) == 41, changed
    assert set(changed[41:]) == {401}
    (alert,) = _changes_alerts(clinic, thief)
    assert alert["action"] == "step-up"
    untouched = clinic.web.get(
        f"/fhir/Patient/{clinic.patients[-1]}", headers=clinic.officer.headers
    ).json()
    assert "telecom" not in untouched


def _book(clinic: Clinic, who: Staff, patient: str) -> int:
    booked = clinic.web.post_json("/fhir/Appointment", _booking(patient, 0), **who.headers)
    return int(booked.status_code)


def test_a_desk_booking_the_whole_clinic_for_today_raises_an_alert(many: Clinic) -> None:
    """A booking is care: it explains the patient's reads to every colleague at the
    clinic, so a phished or colluding desk booking every patient for today opens the
    clinic to a second account (two-accounts evasion, stop 40). Forty in ten minutes
    pass; the 41st is an alert, and a patient booked twice counts once."""
    thief = make_staff(many.services, Role.FRONT_DESK, ["clinic-a"])
    assert [_book(many, thief, patient) for patient in many.patients[:40]] == [201] * 40
    assert _book(many, thief, many.patients[0]) == 201
    assert _changes_alerts(many, thief) == []
    assert _book(many, thief, many.patients[40]) == 201
    (alert,) = _changes_alerts(many, thief)
    assert alert["severity"] == "medium"
    assert "booked care for" in alert["explanation"]


def test_a_desk_booking_the_walk_ins_it_registers_raises_nothing(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The desk's own registrations, booked as they arrive, are not counted: what it
    books for them opens nothing it did not write."""
    with raising_clinic(backend, tmp_path, request, clinic_patients(45)) as clinic:
        assert [_book(clinic, clinic.desk, patient) for patient in clinic.patients] == [201] * 45
        assert _changes_alerts(clinic, clinic.desk) == []


def test_changes_split_across_two_logins_of_one_person_raise_an_alert(many: Clinic) -> None:
    """25 patients' phone numbers with each of two logins naming one practitioner: 50 in
    ten minutes, past the 40 neither login alone reaches (stop 46)."""
    first = make_staff(many.services, Role.FRONT_DESK, ["clinic-a"], "mr-split")
    second = make_staff(many.services, Role.NURSE, ["clinic-a"], "mr-split")
    assert [_rewrite(many, first, patient) for patient in many.patients[:25]] == [200] * 25
    assert [_rewrite(many, second, patient) for patient in many.patients[25:50]] == [200] * 25
    assert _changes_alerts(many, first) == []
    (alert,) = _changes_alerts(many, second)
    assert "with the logins of one practitioner" in alert["explanation"]
    assert alert["patient_count"] >= 41
