"""Adversary round 82 (detection evasion): care a client app made explains a VIP read.

Care a person made alone explains none of their own reads, until someone else writes a
version of it; and a client app counted as someone else. So one insider holding a
doctor's login and any client secret that may write bookings was their own second
account: the client booked a VIP naming the doctor, or wrote back (``arrived``) the
doctor's own booking, and the doctor's read of the VIP raised nothing, where the
doctor's own booking alone raises ``vip`` high. And a client booking a clinic's worth of
patients for the doctor in a minute raised nothing (``staff-changes`` counted staff
only), then the doctor read 50 of them, each explained.

Now care that only a client's writes stand behind (no person besides the reader wrote a
version of it) does not explain a VIP read (``vip``, medium: an honest doctor reading
the online portal's booking of a VIP is paused for a fresh code, not suspended), and a
client booking care for many patients in ten minutes is ``client-care``."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from carevault.detect import alerts_as_dicts
from carevault.domain.roles import Role
from tests.integration.detect.conftest import Clinic, clinic_patients, raising_clinic, vip_clinic
from tests.support.ledgers import patient_pseudonym
from tests.support.staff import Staff, make_staff

pytestmark = pytest.mark.postgres

APP = "kiosk-app"


def _token(clinic: Clinic) -> dict[str, str]:
    """A confidential client of clinic A that may write bookings (say, a kiosk's), signed
    in with client credentials."""
    _, secret = clinic.services.admin.add_client(
        "admin:test", APP, "Kiosk", confidential=True,
        scopes="system/*.cruds", clinic_ids=["clinic-a"],
    )  # fmt: skip
    basic = base64.b64encode(f"{APP}:{secret}".encode()).decode()
    answer = clinic.web.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "scope": "system/*.cruds"},
        headers={"authorization": f"Basic {basic}"},
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _booking(
    patient: str, practitioner: str, status: str = "booked", days_ago: int = 0
) -> dict[str, Any]:
    now = datetime.now(ZoneInfo("Asia/Hong_Kong")) - timedelta(days=days_ago)
    today = now.date().isoformat()
    return {
        "resourceType": "Appointment", "status": status,
        "start": f"{today}T10:00:00+08:00", "end": f"{today}T10:15:00+08:00",
        "participant": [
            {"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"},
            {"actor": {"reference": "Organization/clinic-a"}, "status": "accepted"},
            {"actor": {"reference": f"Practitioner/{practitioner}"}, "status": "accepted"},
        ],
    }  # fmt: skip


def _book(clinic: Clinic, patient: str, headers: dict[str, str]) -> str:
    made = clinic.web.post_json("/fhir/Appointment", _booking(patient, "dr-in"), **headers)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def _write_again(clinic: Clinic, patient: str, booking: str, headers: dict[str, str]) -> None:
    """A version of ``booking`` (the patient checked in)."""
    arrived = {**_booking(patient, "dr-in", "arrived"), "id": booking}
    put = clinic.web.put_json(f"/fhir/Appointment/{booking}", arrived, **headers)
    assert put.status_code == 200, put.text


def _vip_alerts(clinic: Clinic, reader: Staff) -> dict[str, str]:
    """Patient id → severity of each ``vip`` alert on ``reader``'s reads."""
    ids = {patient_pseudonym(clinic.services, p): p for p in clinic.patients}
    detection = clinic.services.detection
    assert detection is not None
    found: dict[str, str] = {}
    for alert in alerts_as_dicts(clinic.services):
        if alert["detector"] == "vip" and alert["account"] == reader.account.username:
            for pseudonym in detection.alerts.get(alert["id"]).patients:
                found[ids[pseudonym]] = str(alert["severity"])
    return found


def test_care_only_a_client_and_the_reader_wrote_explains_no_vip_read(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with vip_clinic(backend, tmp_path, request, 5) as clinic:
        doctor = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], practitioner_id="dr-in")
        app = _token(clinic)
        booked_by_app, corroborated, laundered, desk_checked, control = clinic.patients
        # The app books the VIP naming the doctor.
        _book(clinic, booked_by_app, app)
        # The doctor books; the app writes a version of it, twice.
        own = _book(clinic, corroborated, doctor.headers)
        _write_again(clinic, corroborated, own, app)
        _write_again(clinic, corroborated, own, app)
        # The app books; the doctor writes a version of it (his own name on it).
        theirs = _book(clinic, laundered, app)
        _write_again(clinic, laundered, theirs, doctor.headers)
        # The app books; the desk (another person) checks the patient in: care goes on.
        checked = _book(clinic, desk_checked, app)
        _write_again(clinic, desk_checked, checked, clinic.desk.headers)
        # Control: the doctor's own booking alone.
        _book(clinic, control, doctor.headers)
        for patient in clinic.patients:
            assert clinic.read(doctor, patient) == 200
        assert _vip_alerts(clinic, doctor) == {
            booked_by_app: "medium",
            corroborated: "medium",
            laundered: "medium",
            control: "high",
        }


def test_a_client_booking_many_patients_in_minutes_is_client_care(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The desk booking 60 patients in a minute naming the doctor raises staff-changes;
    the app doing the same raises ``client-care`` on the app."""
    with raising_clinic(backend, tmp_path, request, clinic_patients(120)) as clinic:
        make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], practitioner_id="dr-in")
        app = _token(clinic)
        desk = make_staff(clinic.services, Role.FRONT_DESK, ["clinic-a"])
        for patient in clinic.patients[:60]:
            _book(clinic, patient, desk.headers)
        for patient in clinic.patients[60:]:
            _book(clinic, patient, app)
        alerts = [
            (a["detector"], a["account"], a["client"]) for a in alerts_as_dicts(clinic.services)
        ]
        assert ("staff-changes", desk.account.username) in {a[:2] for a in alerts}
        assert [a[2] for a in alerts if a[0] == "client-care"] == [APP]


def test_a_client_naming_a_doctor_on_many_old_bookings_is_client_care(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Adversary round 83: the desk's bookings of 60 patients with another doctor, over a
    year old; an hour later the app names the doctor on each (``PUT``, today), which
    opens each chart to him as 60 new bookings would. ``client-care`` counted creates
    only, and the doctor's 50 reads that followed raised nothing."""
    with raising_clinic(backend, tmp_path, request, clinic_patients(60)) as clinic:
        doctor = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], practitioner_id="dr-in")
        app = _token(clinic)
        old: dict[str, str] = {}
        for patient in clinic.patients:
            body = _booking(patient, "dr-other", days_ago=400)
            made = clinic.web.post_json("/fhir/Appointment", body, **clinic.desk.headers)
            assert made.status_code == 201, made.text
            old[patient] = str(made.json()["id"])
        clinic.clock.advance(3600)  # the desk's bookings are out of every window
        for patient, booking in old.items():
            body = {**_booking(patient, "dr-in"), "id": booking}
            put = clinic.web.put_json(f"/fhir/Appointment/{booking}", body, **app)
            assert put.status_code == 200, put.text
        for patient in clinic.patients[:50]:
            assert clinic.read(doctor, patient) == 200  # each explained by the app's care
        alerts = [(a["detector"], a["client"]) for a in alerts_as_dicts(clinic.services)]
        assert ("client-care", APP) in alerts, alerts
