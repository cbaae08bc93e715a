"""A booking someone else made corroborates only the care it covered (SQLite and
PostgreSQL; ``domain.care.made_by``). An insider who moves a VIP's booking of long ago
(made by the desk) to today under their own name, and reads the chart, is judged as if
they had booked afresh: the desk's old booking lends no corroboration to today. A doctor
who reschedules a booking the desk made for today to tomorrow continues the desk's care:
their read stays explained."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from carevault.detect import alerts_as_dicts
from carevault.domain.roles import Role
from tests.conftest import make_settings
from tests.integration.detect.conftest import Clinic, opened_clinic
from tests.support.ledgers import patient_pseudonym
from tests.support.staff import make_staff


@pytest.fixture
def clinic(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    url = request.getfixturevalue("pg_schema") if backend == "postgres" else None
    settings = make_settings(
        tmp_path / "home", url, detect_responses="medium=raise,high=raise,critical=raise"
    )
    bodies = (
        {
            "resourceType": "Patient",
            "name": [{"family": f"Star{n}", "given": ["Famous"]}],
            "managingOrganization": {"reference": "Organization/clinic-a"},
        }
        for n in range(4)
    )
    with opened_clinic(settings, bodies) as opened:
        yield opened


def _booking(patient: str, practitioner: str, days_ago: int, status: str) -> dict[str, Any]:
    day = (datetime.now(ZoneInfo("Asia/Hong_Kong")).date() - timedelta(days=days_ago)).isoformat()
    return {
        "resourceType": "Appointment",
        "status": status,
        "start": f"{day}T10:00:00+08:00",
        "end": f"{day}T10:15:00+08:00",
        "participant": [
            {"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"},
            {"actor": {"reference": "Organization/clinic-a"}, "status": "accepted"},
            {"actor": {"reference": f"Practitioner/{practitioner}"}, "status": "accepted"},
        ],
    }


def test_moving_a_vips_old_booking_to_today_does_not_explain_the_movers_read(
    clinic: Clinic,
) -> None:
    detection = clinic.services.detection
    assert detection is not None
    control, vip, cancelled, rescheduled = clinic.patients
    for patient in clinic.patients:
        detection.flags.set(
            "vip", patient_pseudonym(clinic.services, patient), "staff:test-officer"
        )
    doctor = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], practitioner_id="dr-in")
    made = {}
    for patient, days_ago, status in (
        (control, 400, "fulfilled"),
        (vip, 400, "fulfilled"),
        (cancelled, 0, "cancelled"),
        (rescheduled, 0, "booked"),
    ):
        body = _booking(patient, "dr-old", days_ago, status)
        response = clinic.web.post_json("/fhir/Appointment", body, **clinic.desk.headers)
        assert response.status_code == 201, response.text
        made[patient] = response.json()["id"]
    # The old booking alone explains nothing today.
    assert clinic.read(doctor, control) == 200
    # The insider moves the VIP's old booking to today, re-opens the cancelled one, and
    # reschedules the desk's booking of today to tomorrow, each under their own name.
    for patient, days_ago in ((vip, 0), (cancelled, 0), (rescheduled, -1)):
        moved = {**_booking(patient, "dr-in", days_ago, "booked"), "id": made[patient]}
        url = f"/fhir/Appointment/{made[patient]}"
        response = clinic.web.put_json(url, moved, **doctor.headers)
        assert response.status_code == 200, response.text
        assert clinic.read(doctor, patient) == 200
    # Reads no care explains (a VIP read far from the visit that care does explain is
    # medium for another reason, and how far "tomorrow" is depends on the hour).
    alerts = [
        a
        for a in alerts_as_dicts(clinic.services)
        if a["account"] == doctor.account.username
        and "without a care relationship" in a["explanation"]
    ]
    flagged = {p for a in alerts for p in detection.alerts.get(a["id"]).patients}
    assert patient_pseudonym(clinic.services, control) in flagged
    # Care of the mover's own making explains none of their reads.
    assert patient_pseudonym(clinic.services, vip) in flagged
    assert patient_pseudonym(clinic.services, cancelled) in flagged
    # Rescheduling within the desk's own care window continues the desk's care.
    assert patient_pseudonym(clinic.services, rescheduled) not in flagged
