"""Care a clinician made alone explains none of their own reads (SQLite and
PostgreSQL): an insider books a VIP under their own name and reads the chart; the
booking lets them in (care goes on) but the read is judged as unexplained. Once someone
else corroborates the booking (the desk checks the patient in) or books it, the same
read is explained."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from carevault.detect import alerts_as_dicts
from carevault.domain.roles import Role
from tests.integration.detect.conftest import Clinic, clinic_patients, raising_clinic
from tests.support.ledgers import patient_pseudonym
from tests.support.staff import Staff, make_staff


@pytest.fixture
def clinic(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    with raising_clinic(backend, tmp_path, request, clinic_patients(6, "Star", "Famous")) as opened:
        yield opened


def _booking(
    patient: str, practitioner: str, status: str = "booked", **more: Any
) -> dict[str, Any]:
    today = datetime.now(ZoneInfo("Asia/Hong_Kong")).date().isoformat()
    return {
        "resourceType": "Appointment",
        "status": status,
        "start": f"{today}T10:00:00+08:00",
        "end": f"{today}T10:15:00+08:00",
        "participant": [
            {"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"},
            {"actor": {"reference": "Organization/clinic-a"}, "status": "accepted"},
            {"actor": {"reference": f"Practitioner/{practitioner}"}, "status": "accepted"},
        ],
        **more,
    }


def _book(clinic: Clinic, who: Staff, patient: str, practitioner: str) -> str:
    response = clinic.web.post_json(
        "/fhir/Appointment", _booking(patient, practitioner), **who.headers
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_an_insiders_own_booking_does_not_explain_their_read_until_corroborated(
    clinic: Clinic,
) -> None:
    detection = clinic.services.detection
    assert detection is not None
    celebrity, checked_in, booked_by_desk, rescheduled = clinic.patients[:4]
    for patient in (celebrity, checked_in, booked_by_desk, rescheduled):
        # As the officer's desk flags them (one TOTP code each would wait for the next step).
        detection.flags.set(
            "vip", patient_pseudonym(clinic.services, patient), "staff:test-officer"
        )
    doctor = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], practitioner_id="dr-in")

    # Corroborated: the desk checks in the patient the doctor booked.
    booking = _book(clinic, doctor, checked_in, "dr-in")
    arrived = {**_booking(checked_in, "dr-in", "arrived"), "id": booking}
    response = clinic.web.put_json(f"/fhir/Appointment/{booking}", arrived, **clinic.desk.headers)
    assert response.status_code == 200, response.text
    # Corroborated: the desk booked it; then the doctor moved it (still corroborated).
    _book(clinic, clinic.desk, booked_by_desk, "dr-in")
    moved = _book(clinic, clinic.desk, rescheduled, "dr-in")
    again = {**_booking(rescheduled, "dr-in"), "id": moved, "comment": "moved to 10:00"}
    response = clinic.web.put_json(f"/fhir/Appointment/{moved}", again, **doctor.headers)
    assert response.status_code == 200, response.text
    for patient in (checked_in, booked_by_desk, rescheduled):
        assert clinic.read(doctor, patient) == 200
    assert alerts_as_dicts(clinic.services) == []

    # Self-made: booked by the doctor alone, set "arrived" by the doctor too.
    booking = _book(clinic, doctor, celebrity, "dr-in")
    arrived = {**_booking(celebrity, "dr-in", "arrived"), "id": booking}
    response = clinic.web.put_json(f"/fhir/Appointment/{booking}", arrived, **doctor.headers)
    assert response.status_code == 200, response.text
    assert clinic.read(doctor, celebrity) == 200  # care goes on: the read is allowed
    (alert,) = alerts_as_dicts(clinic.services)
    assert (alert["detector"], alert["account"]) == ("vip", doctor.account.username)
    assert detection.alerts.get(alert["id"]).patients == (
        patient_pseudonym(clinic.services, celebrity),
    )
    # The same booking explains a colleague's read: only its maker's are unexplained.
    nurse = make_staff(clinic.services, Role.NURSE, ["clinic-a"])
    assert clinic.read(nurse, celebrity) == 200
    assert [a["account"] for a in alerts_as_dicts(clinic.services)] == [doctor.account.username]
