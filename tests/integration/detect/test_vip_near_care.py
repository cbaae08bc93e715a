"""A VIP's record and the clinic's care window (SQLite and PostgreSQL): a booking opens
the record to all the clinic's staff from 30 days before it, but for a patient marked
VIP only a look within a day of the visit, or by someone the care names, goes unjudged.
A nurse of the clinic who opens the record on the day of its booking raises nothing;
ten days before the booking, a medium ``vip`` alert."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from carevault.detect import alerts_as_dicts
from carevault.domain.roles import Role
from tests.integration.detect.conftest import Clinic, clinic_patients, raising_clinic
from tests.support.ledgers import patient_pseudonym
from tests.support.staff import make_staff


@pytest.fixture
def clinic(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    with raising_clinic(backend, tmp_path, request, clinic_patients(2, "Star", "Famous")) as opened:
        yield opened


def _booking(patient: str, days_ahead: int) -> dict[str, Any]:
    day = (datetime.now(ZoneInfo("Asia/Hong_Kong")) + timedelta(days=days_ahead)).date()
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "start": f"{day.isoformat()}T10:00:00+08:00",
        "end": f"{day.isoformat()}T10:15:00+08:00",
        "participant": [
            {"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"},
            {"actor": {"reference": "Organization/clinic-a"}, "status": "accepted"},
            {"actor": {"reference": "Practitioner/dr-in"}, "status": "accepted"},
        ],
    }


def test_a_vip_opened_days_before_the_clinics_booking_is_a_medium_alert(clinic: Clinic) -> None:
    detection = clinic.services.detection
    assert detection is not None
    today, later = clinic.patients
    for patient in (today, later):
        detection.flags.set("vip", patient_pseudonym(clinic.services, patient), "staff:officer")
    nurse = make_staff(clinic.services, Role.NURSE, ["clinic-a"])
    for patient, days in ((today, 0), (later, 10)):
        booked = clinic.web.post_json(
            "/fhir/Appointment", _booking(patient, days), **clinic.desk.headers
        )
        assert booked.status_code == 201, booked.text

    assert clinic.read(nurse, today) == 200  # on the day of the visit
    assert alerts_as_dicts(clinic.services) == []

    assert clinic.read(nurse, later) == 200  # the care window lets the nurse in
    (alert,) = alerts_as_dicts(clinic.services)
    assert (alert["detector"], alert["severity"], alert["account"]) == (
        "vip", "medium", nurse.account.username,
    )  # fmt: skip
    assert "more than a day from any visit" in alert["explanation"]
    assert detection.alerts.get(alert["id"]).patients == (
        patient_pseudonym(clinic.services, later),
    )
