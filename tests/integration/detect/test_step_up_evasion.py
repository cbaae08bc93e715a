"""Reading on after a step-up by every way the gate releases patients: the watch
(``after-step-up``) counts what left, whatever interaction it left by."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from carevault.detect import alerts_as_dicts
from carevault.detect.desk import OfficerCode
from carevault.domain.roles import Role
from tests.integration.detect.conftest import (
    WATCH_ALLOWED,
    Clinic,
    clinic_patients,
    clinic_settings,
    opened_clinic,
    watched_settings,
)
from tests.integration.detect.test_step_up import (
    HKID,
    OWN_RECORD,
    _registered_by_a_colleague,
    _step_up_after_opening_own_record,
)
from tests.integration.detect.test_vip_near_care import _booking
from tests.support.staff import TEST_APP, Staff, make_staff, open_token

ALLOWED = WATCH_ALLOWED


@contextmanager
def stepped_up(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, patients: int = 8
) -> Iterator[Clinic]:
    """A clinic whose front desk opened its own record (medium: step-up) and presented a
    fresh code, as whoever holds a phished password and TOTP seed does."""
    settings = watched_settings(backend, tmp_path, request)
    with opened_clinic(settings, clinic_patients(0)) as clinic:
        # Records another desk wrote: the watch does not count those the desk created.
        clinic.patients[:] = _registered_by_a_colleague(clinic, patients)
        _step_up_after_opening_own_record(clinic)
        yield clinic


@contextmanager
def staff_stepped_up(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, role: Role
) -> Iterator[tuple[Clinic, Staff]]:
    """A clinic of eight patients and a member of staff of ``role`` who opened their own
    record (medium: step-up) and presented a fresh code."""
    settings = watched_settings(backend, tmp_path, request)
    with opened_clinic(settings, clinic_patients(8)) as clinic:
        member = make_staff(clinic.services, role, ["clinic-a"])
        _step_up_after_opening_own_record(clinic, member)
        yield clinic, member


def _suspended(clinic: Clinic) -> dict[str, Any]:
    alerts = {a["detector"]: a for a in alerts_as_dicts(clinic.services)}
    assert "after-step-up" in alerts, sorted(alerts)
    watch = alerts["after-step-up"]
    assert (watch["action"], watch["account"]) == ("suspend", clinic.desk.account.username)
    account = clinic.services.accounts.get(clinic.desk.account.account_id)
    assert account is not None and account.suspended
    return watch


def _get(clinic: Clinic, url: str, headers: dict[str, str] | None = None) -> None:
    got = clinic.web.get(url, headers=headers or clinic.desk.headers)
    assert got.status_code == 200, got.text


def _search_post(clinic: Clinic) -> None:
    got = clinic.web.post(
        "/fhir/Patient/_search", data={"given": "Tai", "_count": "50"}, headers=clinic.desk.headers
    )
    assert got.status_code == 200, got.text


def _batch(clinic: Clinic) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": f"Patient/{p}"}} for p in clinic.patients[:4]
        ],
    }
    got = clinic.web.post_json("/fhir", bundle, **clinic.desk.headers)
    assert got.status_code == 200, got.text
    assert all(e["response"]["status"].startswith("200") for e in got.json()["entry"]), got.text


def _each(path: str) -> Callable[[Clinic], None]:
    """``path`` (with ``{p}``) for four patients, one request each."""

    def read(clinic: Clinic) -> None:
        for patient in clinic.patients[:4]:
            _get(clinic, path.format(p=patient))

    return read


READS: dict[str, Callable[[Clinic], None]] = {
    # One broad search that lists every patient of the clinic: nothing picked, all given.
    "search": lambda c: _get(c, "/fhir/Patient?given=Tai&_count=50"),
    "search-post": _search_post,
    "everything": _each("/fhir/Patient/{p}/$everything"),
    "history": _each("/fhir/Patient/{p}/_history"),
    "vread": _each("/fhir/Patient/{p}/_history/1"),
    "type-history": lambda c: _get(c, "/fhir/Patient/_history?_count=50"),
    "system-history": lambda c: _get(c, "/fhir/_history?_count=50"),
    "batch": _batch,
}


@pytest.mark.parametrize("how", sorted(READS))
def test_reading_on_by_any_interaction_after_a_step_up_suspends(
    how: str, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with stepped_up(backend, tmp_path, request) as clinic:
        READS[how](clinic)
        watch = _suspended(clinic)
        assert watch["patient_count"] > ALLOWED


def test_a_second_session_opened_after_the_step_up_is_watched_as_the_account(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # Signing in again gives a session that was never paused: the watch is the account's.
    with stepped_up(backend, tmp_path, request) as clinic:
        fresh = open_token(clinic.services, clinic.desk.account, "user/*.cruds")
        for patient in clinic.patients[:4]:
            _get(clinic, f"/fhir/Patient/{patient}", {"authorization": f"Bearer {fresh}"})
        _suspended(clinic)


#: Words long enough for any minimum a grant asks of them.
WORDS = "covering for Dr Wong on the ward round"


def test_breaking_the_glass_after_a_step_up_is_counted_by_the_watch(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # A read under a grant is explained, and break-glass-volume allows 5 patients an
    # hour: uncounted, whoever passed the step-up with a phished seed would read 120
    # patients a day, one grant at a time.
    with staff_stepped_up(backend, tmp_path, request, Role.PHYSICIAN) as (clinic, doctor):
        body = {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "reason", "valueCode": "covering-for-colleague"},
                {"name": "text", "valueString": WORDS},
            ],
        }
        for n, patient in enumerate(clinic.patients[: ALLOWED + 1]):  # under 5 an hour
            granted = clinic.web.post_json(
                f"/fhir/Patient/{patient}/$break-glass", body, **doctor.headers
            )
            assert granted.status_code in (200, 201), granted.text
            # The last grant is past the allowance: the read may meet the suspension.
            assert clinic.read(doctor, patient) in ((200,) if n < ALLOWED else (200, 401))
        alerts = {a["detector"]: a for a in alerts_as_dicts(clinic.services)}
        assert "break-glass-volume" not in alerts
        watch = alerts["after-step-up"]
        assert (watch["action"], watch["patient_count"]) == ("suspend", ALLOWED + 1)
        account = clinic.services.accounts.get(doctor.account.account_id)
        assert account is not None and account.suspended


def test_a_refresh_token_minted_before_the_step_up_gives_only_a_paused_session(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = clinic_settings(backend, tmp_path, request, detect_kin_grace_seconds=0)
    with opened_clinic(settings, clinic_patients(2)) as clinic:
        account = clinic.desk.account
        pair = clinic.services.sessions.open(
            subject=account.account_id,
            account_id=account.account_id,
            client_id=TEST_APP,
            scope="user/*.cruds offline_access",
            with_refresh=True,
            source_address="127.0.0.1",
            user_agent="tests",
        )
        assert pair.refresh_token
        detection = clinic.services.detection
        assert detection is not None
        officer = OfficerCode(clinic.officer.account.username, clinic.officer.totp())
        detection.desk.identify(officer, account.username, hkid=HKID)
        own = clinic.web.post_json("/fhir/Patient", OWN_RECORD, **clinic.desk.headers)
        assert own.status_code == 201, own.text
        assert clinic.read(clinic.desk, own.json()["id"]) == 200
        assert [a["action"] for a in alerts_as_dicts(clinic.services)] == ["step-up"]
        refreshed = clinic.web.post(
            "/auth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": pair.refresh_token,
                "client_id": TEST_APP,
            },
        )
        assert refreshed.status_code == 200, refreshed.text
        token = refreshed.json()["access_token"]
        got = clinic.web.get(
            f"/fhir/Patient/{clinic.patients[0]}", headers={"authorization": f"Bearer {token}"}
        )
        assert got.status_code == 401 and "step-up required" in got.text


def test_an_honest_desk_registering_and_booking_walk_ins_after_a_step_up_reads_on(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # The person whose alert was false: a day of walk-ins, each registered, booked (care
    # the desk made alone, which explains none of its own reads) and opened again.
    with stepped_up(backend, tmp_path, request) as clinic:
        for n in range(ALLOWED + 1):
            walk_in = {
                "resourceType": "Patient",
                "name": [{"family": f"Walk{n}", "given": ["In"]}],
                "managingOrganization": {"reference": "Organization/clinic-a"},
            }
            made = clinic.web.post_json("/fhir/Patient", walk_in, **clinic.desk.headers)
            assert made.status_code == 201, made.text
            patient = made.json()["id"]
            booked = clinic.web.post_json(
                "/fhir/Appointment", _booking(patient, 0), **clinic.desk.headers
            )
            assert booked.status_code == 201, booked.text
            assert clinic.read(clinic.desk, patient) == 200
        detectors = {a["detector"] for a in alerts_as_dicts(clinic.services)}
        assert "after-step-up" not in detectors


def test_a_watched_account_cannot_read_on_through_a_second_accounts_bookings(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with staff_stepped_up(backend, tmp_path, request, Role.NURSE) as (clinic, nurse):
        # The second (phished or colluding) account books every patient for today.
        for patient in clinic.patients:
            booked = clinic.web.post_json(
                "/fhir/Appointment", _booking(patient, 0), **clinic.desk.headers
            )
            assert booked.status_code == 201, booked.text
        for patient in clinic.patients:
            assert clinic.read(nurse, patient) == 200
        alerts = {a["detector"]: a for a in alerts_as_dicts(clinic.services)}
        assert "after-step-up" in alerts, sorted(alerts)
        watch = alerts["after-step-up"]
        assert (watch["action"], watch["account"]) == ("suspend", nurse.account.username)
        assert "care another account made alone" in watch["explanation"]
        account = clinic.services.accounts.get(nurse.account.account_id)
        assert account is not None and account.suspended


def test_a_nurse_after_a_false_alert_reads_the_patients_booked_for_her_before_it(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # The day's appointments, booked by the desk alone before her alert: care that was
    # there for anyone, whatever the watch makes of care booked since.
    settings = watched_settings(backend, tmp_path, request)
    with opened_clinic(settings, clinic_patients(8)) as clinic:
        nurse = make_staff(clinic.services, Role.NURSE, ["clinic-a"])
        for patient in clinic.patients:
            booked = clinic.web.post_json(
                "/fhir/Appointment", _booking(patient, 0), **clinic.desk.headers
            )
            assert booked.status_code == 201, booked.text
        _step_up_after_opening_own_record(clinic, nurse)
        for patient in clinic.patients:
            assert clinic.read(nurse, patient) == 200
        detectors = {a["detector"] for a in alerts_as_dicts(clinic.services)}
        assert "after-step-up" not in detectors
        account = clinic.services.accounts.get(nurse.account.account_id)
        assert account is not None and not account.suspended


def test_bookings_written_back_at_deleted_ids_after_the_alert_are_care_made_since(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Care is dated by its record's first version since it was last deleted: a desk that
    booked and deleted every patient before the nurse's alert, and writes the bookings
    back at their ids after it, makes new care (review, stop 40: dated by the id's first
    version, it was taken as care that was there for anyone)."""
    settings = watched_settings(backend, tmp_path, request)
    with opened_clinic(settings, clinic_patients(8)) as clinic:
        nurse = make_staff(clinic.services, Role.NURSE, ["clinic-a"])
        kept: dict[str, str] = {}
        for patient in clinic.patients:
            booked = clinic.web.post_json(
                "/fhir/Appointment", _booking(patient, 0), **clinic.desk.headers
            )
            assert booked.status_code == 201, booked.text
            kept[patient] = booked.json()["id"]
            gone = clinic.web.delete(
                f"/fhir/Appointment/{kept[patient]}", headers=clinic.desk.headers
            )
            assert gone.status_code in (200, 204), gone.text
        _step_up_after_opening_own_record(clinic, nurse)
        for patient, booking in kept.items():
            again = clinic.web.put_json(
                f"/fhir/Appointment/{booking}",
                {**_booking(patient, 0), "id": booking},
                **clinic.desk.headers,
            )
            assert again.status_code in (200, 201), again.text
        for patient in clinic.patients:
            assert clinic.read(nurse, patient) == 200
        alerts = {a["detector"]: a for a in alerts_as_dicts(clinic.services)}
        assert "after-step-up" in alerts, sorted(alerts)
        assert "care another account made alone" in alerts["after-step-up"]["explanation"]
