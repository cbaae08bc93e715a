"""Writes an insider plays to make their own care look corroborated (SQLite and
PostgreSQL; ``domain.care.made_by``). A doctor takes a VIP's booking the desk made long
ago, or one of today, and turns it, by some interaction other than a plain PUT, into
care of today under their own name: a PATCH, a conditional update, a transaction that
first "keeps" the booking and then moves it, a deletion and a re-creation at the same
id, or a walk to today in steps, each within the care window the step before opened
(``domain.care.attribute``). Each is judged as the doctor's own care: their read of the
chart is unexplained."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from carevault.detect import alerts_as_dicts
from carevault.domain.roles import Role
from tests.integration.detect.conftest import Clinic, vip_clinic
from tests.support.client import FHIR_JSON
from tests.support.ledgers import patient_pseudonym
from tests.support.staff import Staff, make_staff

ZONE = ZoneInfo("Asia/Hong_Kong")


@pytest.fixture
def clinic(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    with vip_clinic(backend, tmp_path, request, 6) as opened:
        yield opened


def _booking(patient: str, practitioner: str, start: datetime, status: str) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "status": status,
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=15)).isoformat(),
        "participant": [
            {"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"},
            {"actor": {"reference": "Organization/clinic-a"}, "status": "accepted"},
            {"actor": {"reference": f"Practitioner/{practitioner}"}, "status": "accepted"},
        ],
    }


def _today() -> datetime:
    return datetime.now(ZONE).replace(hour=10, minute=0, second=0, microsecond=0)


def _desk_books(clinic: Clinic, patient: str, start: datetime, status: str = "fulfilled") -> str:
    body = _booking(patient, "dr-old", start, status)
    response = clinic.web.post_json("/fhir/Appointment", body, **clinic.desk.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _put(clinic: Clinic, who: Staff, booking: str, body: dict[str, Any]) -> None:
    url = f"/fhir/Appointment/{booking}"
    response = clinic.web.put_json(url, {**body, "id": booking}, **who.headers)
    assert response.status_code in (200, 201), response.text


def _alerted(clinic: Clinic, who: Staff, saying: str) -> set[str]:
    """The patients of alerts on ``who`` whose explanation says ``saying``: "without a
    care relationship" (no care explained the read), "more than a day" (a VIP read far
    from any visit)."""
    detection = clinic.services.detection
    assert detection is not None
    return {
        patient
        for alert in alerts_as_dicts(clinic.services)
        if alert["account"] == who.account.username and saying in alert["explanation"]
        for patient in detection.alerts.get(alert["id"]).patients
    }


def _unexplained(clinic: Clinic, who: Staff) -> set[str]:
    return _alerted(clinic, who, "without a care relationship")


def _far_from_visit(clinic: Clinic, who: Staff) -> set[str]:
    return _alerted(clinic, who, "more than a day")


def _doctor(clinic: Clinic) -> Staff:
    doctor = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], practitioner_id="dr-in")
    # Known at once as a practitioner of clinic A (the directory is re-read every 5 s).
    clinic.services.access._clinics = None
    return doctor


def test_an_old_booking_made_today_by_any_interaction_is_the_movers_own_care(
    clinic: Clinic,
) -> None:
    patched, conditional, bundled, recreated = clinic.patients[:4]
    doctor = _doctor(clinic)
    old = _today() - timedelta(days=400)
    today = _booking("", "dr-in", _today(), "booked")
    made = {patient: _desk_books(clinic, patient, old) for patient in clinic.patients[:3]}
    made[recreated] = _desk_books(clinic, recreated, _today(), "booked")
    web = clinic.web

    # PATCH: the start moved to today, the doctor named.
    ops = [
        {"op": "replace", "path": "/start", "value": today["start"]},
        {"op": "replace", "path": "/end", "value": today["end"]},
        {"op": "replace", "path": "/status", "value": "booked"},
        {"op": "replace", "path": "/participant/2/actor/reference", "value": "Practitioner/dr-in"},
    ]
    response = web.patch(
        f"/fhir/Appointment/{made[patched]}",
        content=json.dumps(ops),
        headers={**doctor.headers, "content-type": "application/json-patch+json"},
    )
    assert response.status_code == 200, response.text
    # A conditional update that finds the booking by its id.
    response = web.put_json(
        f"/fhir/Appointment?_id={made[conditional]}",
        _booking(conditional, "dr-in", _today(), "booked"),
        **doctor.headers,
    )
    assert response.status_code == 200, response.text
    # One transaction: the booking "kept" as it was (inside the desk's window), then moved.
    url = f"Appointment/{made[bundled]}"
    kept = {**_booking(bundled, "dr-in", old, "fulfilled"), "id": made[bundled]}
    moved = {**_booking(bundled, "dr-in", _today(), "booked"), "id": made[bundled]}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": body, "request": {"method": "PUT", "url": url}} for body in (kept, moved)
        ],
    }
    headers = {**doctor.headers, **FHIR_JSON}
    response = web.post("/fhir", content=json.dumps(bundle), headers=headers)
    # Refused: a transaction writes each resource once (R4 http.html#trules, overlapping
    # identities fail it), so nothing of it was written. The same two steps, one by one.
    assert response.status_code == 400, response.text
    _put(clinic, doctor, made[bundled], kept)
    _put(clinic, doctor, made[bundled], moved)
    # The desk's booking of today deleted and written again at its id by the doctor.
    response = web.delete(f"/fhir/Appointment/{made[recreated]}", headers=doctor.headers)
    assert response.status_code in (200, 204), response.text
    _put(clinic, doctor, made[recreated], _booking(recreated, "dr-in", _today(), "booked"))

    for patient in (patched, conditional, bundled, recreated):
        assert clinic.read(doctor, patient) == 200  # care goes on
    pseudonyms = {patient_pseudonym(clinic.services, p) for p in clinic.patients[:4]}
    assert _unexplained(clinic, doctor) >= pseudonyms


def test_walking_an_old_booking_to_today_in_steps_is_still_the_walkers_own_care(
    clinic: Clinic,
) -> None:
    vip = clinic.patients[0]
    doctor = _doctor(clinic)
    old = _today() - timedelta(days=400)
    booking = _desk_books(clinic, vip, old)
    for step in (90, 180, 270, 360, 400):
        # Each start lies within the window the version before opened (90 days after).
        _put(clinic, doctor, booking, _booking(vip, "dr-in", old + timedelta(days=step), "booked"))
    assert clinic.read(doctor, vip) == 200
    assert patient_pseudonym(clinic.services, vip) in _unexplained(clinic, doctor)


def test_naming_oneself_on_a_colleagues_old_booking_is_no_care_that_names_one(
    clinic: Clinic,
) -> None:
    control, renamed = clinic.patients[:2]
    doctor = _doctor(clinic)
    old = _today() - timedelta(days=60)
    made = {patient: _desk_books(clinic, patient, old) for patient in (control, renamed)}
    # The desk's care of two months ago explains the read, far from the visit: medium.
    assert clinic.read(doctor, control) == 200
    assert _far_from_visit(clinic, doctor) == {patient_pseudonym(clinic.services, control)}
    # The doctor puts their own name on the other booking, its date as it was.
    _put(clinic, doctor, made[renamed], _booking(renamed, "dr-in", old, "fulfilled"))
    assert clinic.read(doctor, renamed) == 200
    assert patient_pseudonym(clinic.services, renamed) in _far_from_visit(clinic, doctor)


def test_a_desks_booking_brought_forward_to_today_is_near_the_visit_for_the_doctor(
    clinic: Clinic,
) -> None:
    # Split into the desk's part and the doctor's (a week before it), the window is still
    # one visit's: a read today, the day of the visit, is close care.
    vip = clinic.patients[0]
    doctor = _doctor(clinic)
    booking = _desk_books(clinic, vip, _today() + timedelta(days=7), "booked")
    _put(clinic, doctor, booking, _booking(vip, "dr-old", _today(), "booked"))
    assert clinic.read(doctor, vip) == 200
    assert [
        a for a in alerts_as_dicts(clinic.services) if a["account"] == doctor.account.username
    ] == []
