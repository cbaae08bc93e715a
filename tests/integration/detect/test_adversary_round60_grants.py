"""Adversary round 60, grants: what a break-the-glass grant hid (SQLite and PostgreSQL).

A grant explains every read under it, so a doctor of clinic B who broke the glass for
a patient marked VIP, a co-worker, their own record or someone at their own home raised
no alert of its own: only the grant's place in the review queue (round 59 left it open).
Such a read is now a low alert of its own, raised only: the officer is told at once and
nobody is paused or suspended (an emergency on a VIP must not stop treatment), whatever
the response policy says of low alerts and after a restart too.

And a doctor breaking the glass for 19 patients a day, every day, stayed within
``break-glass-volume``'s day (20) for ever, while ``slow-drip`` counts unexplained
patients only: 133 patients of other clinics a week, none alerted. A week of grants
now allows two days' worth (40): a doctor covering a colleague's clinic two days a
week stays quiet, the 41st patient in seven days is a sweep, and the week's grants
outlive a restart.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from carevault.bootstrap import Services, build_services
from carevault.db import write_transaction
from carevault.detect import alerts_as_dicts
from carevault.detect.tables import detect_cursor
from carevault.domain.roles import Role
from carevault.web.app import create_app
from tests.integration.detect.conftest import (
    Clinic,
    clinic_patients,
    clinic_settings,
    opened_clinic,
    raising_clinic,
)
from tests.integration.detect.test_break_glass_volume import _break_glass
from tests.integration.detect.test_snooping import _hkid
from tests.integration.detect.test_snooping import _patient as held_patient
from tests.support.client import FhirTestClient
from tests.support.ledgers import patient_pseudonym
from tests.support.staff import Staff, make_staff

pytestmark = pytest.mark.postgres

HOME = ["Flat A, 3/F", "12 Hill Road"]
#: 19 patients a day, one every 76 minutes: never more than 19 in any 24 hours (the
#: day's limit is 20) nor more than one in an hour (its limit is 5).
PACE_SECONDS = 76 * 60
DAYS = 7
PER_DAY = 19


@pytest.fixture
def contained(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    """Clinic A with the built-in responses (medium steps up, high suspends) and, for one
    test, a policy that would suspend on low alerts; picks of kin judged at once."""
    policy = getattr(request, "param", "")
    settings = clinic_settings(
        backend, tmp_path, request, detect_responses=policy, detect_kin_grace_seconds=0
    )
    with opened_clinic(settings, clinic_patients(4, "Star", "Famous")) as opened:
        yield opened


@pytest.fixture
def many(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    """Clinic A with a week's worth of patients, its detectors raising alerts only; a
    session lasts the test's days (its clock moves on by days, the tokens' by seconds)."""
    patients = clinic_patients(DAYS * PER_DAY)
    week = (DAYS + 2) * 24 * 3600
    with raising_clinic(backend, tmp_path, request, patients, session_max_seconds=week) as it:
        yield it


@pytest.fixture
def reopened() -> Iterator[list[Services]]:
    opened: list[Services] = []
    yield opened
    for services in opened:
        services.close()


def _flag_vip(clinic: Clinic, patient: str) -> str:
    detection = clinic.services.detection
    assert detection is not None
    pseudonym = patient_pseudonym(clinic.services, patient)
    detection.flags.set("vip", pseudonym, "staff:test-officer")
    return pseudonym


def _of(clinic: Clinic, who: Staff) -> list[dict[str, Any]]:
    return [
        alert
        for alert in alerts_as_dicts(clinic.services)
        if alert["account"] == who.account.username
    ]


def _not_contained(clinic: Clinic, who: Staff, patient: str) -> None:
    """Nobody paused, suspended or taken offline: the doctor reads on."""
    services = clinic.services
    account = services.accounts.find(who.account.username)
    assert account is not None and not account.suspended
    assert not services.containment.refresh().active
    assert clinic.read(who, patient) == 200


def test_a_vip_opened_under_a_grant_is_a_low_alert_that_suspends_no_one(
    contained: Clinic,
) -> None:
    clinic = contained
    vip = clinic.patients[0]
    pseudonym = _flag_vip(clinic, vip)
    doctor = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-b"])
    _break_glass(clinic, doctor, [vip])
    (alert,) = _of(clinic, doctor)
    assert (alert["detector"], alert["severity"], alert["action"]) == ("vip", "low", "raise")
    assert "break-the-glass grant" in str(alert["explanation"])
    detection = clinic.services.detection
    assert detection is not None
    assert detection.alerts.get(alert["id"]).patients == (pseudonym,)
    _not_contained(clinic, doctor, vip)


@pytest.mark.parametrize("contained", ["low=suspend"], indirect=True)
def test_the_vip_alert_under_a_grant_is_raised_only_whatever_the_policy(
    contained: Clinic,
) -> None:
    """An operator whose policy suspends on low alerts still stops no emergency."""
    clinic = contained
    vip = clinic.patients[0]
    _flag_vip(clinic, vip)
    doctor = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-b"])
    _break_glass(clinic, doctor, [vip])
    (alert,) = _of(clinic, doctor)
    assert (alert["detector"], alert["severity"], alert["action"]) == ("vip", "low", "raise")
    _not_contained(clinic, doctor, vip)


def test_the_vip_alert_under_a_grant_contains_no_one_after_a_restart(
    contained: Clinic, reopened: list[Services]
) -> None:
    """The process dies before its last write: whoever takes over replays the last day
    into its windows and judges again what the stored cursor had not reached, the read
    under the grant among it. Still one low alert, raised only; nobody contained."""
    clinic = contained
    vip = clinic.patients[0]
    _flag_vip(clinic, vip)
    doctor = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-b"])
    _break_glass(clinic, doctor, [vip])
    (first,) = _of(clinic, doctor)
    settings = clinic.services.settings
    clinic.services.close()
    again = build_services(settings, clock=clinic.clock)
    reopened.append(again)
    with write_transaction(again.engine) as connection:
        # As a crash before the write that followed the read would have left it.
        connection.execute(update(detect_cursor).values(position=first["first_position"]))
    with FhirTestClient(create_app(again.settings, again)) as web:
        assert web.get(f"/fhir/Patient/{vip}", headers=doctor.headers).status_code == 200
        restarted = replace(clinic, services=again, web=web)
        alerts = _of(restarted, doctor)
        assert [(a["id"], a["severity"], a["action"]) for a in alerts] == [
            (first["id"], "low", "raise")
        ]
        _not_contained(restarted, doctor, vip)


def test_a_patient_not_marked_vip_opened_under_a_grant_raises_nothing(
    contained: Clinic,
) -> None:
    clinic = contained
    _flag_vip(clinic, clinic.patients[0])
    doctor = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-b"])
    _break_glass(clinic, doctor, clinic.patients[1:3])
    assert _of(clinic, doctor) == []


def test_kin_opened_under_a_grant_are_low_alerts_that_suspend_no_one(
    contained: Clinic,
) -> None:
    """A co-worker, one's own record and a household member, each under a grant: told
    at once, raised only. A namesake under a grant is not (see the threat model)."""
    clinic = contained
    detection = clinic.services.detection
    assert detection is not None
    doctor = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-b"])
    detection.kinship.identify(
        f"staff:{doctor.account.username}",
        "test:hr",
        surname="Wong",
        address_lines=HOME,
        hkid=_hkid(1),
    )
    colleague = make_staff(clinic.services, Role.NURSE, ["clinic-a"])
    detection.kinship.identify(f"staff:{colleague.account.username}", "test:hr", hkid=_hkid(2))
    kin = [
        _register(clinic, held_patient("Wong", ["Flat A, 3/F", "12 Hill Rd"], _hkid(1))),
        _register(clinic, held_patient("Ho", ["Flat 9, 9/F", "9 Kings Road"], _hkid(2))),
        _register(clinic, held_patient("Lee", ["FLAT A 3/F", "12 HILL ROAD"])),
    ]
    _break_glass(clinic, doctor, kin)
    alerts = {a["detector"]: a for a in _of(clinic, doctor)}
    assert set(alerts) == {"own-record", "co-worker", "same-address"}
    for alert in alerts.values():
        assert (alert["severity"], alert["action"], alert["patient_count"]) == ("low", "raise", 1)
        assert "break-the-glass grant" in str(alert["explanation"])
    _not_contained(clinic, doctor, kin[1])


def _register(clinic: Clinic, body: dict[str, Any]) -> str:
    response = clinic.web.post_json("/fhir/Patient", body, **clinic.desk.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _sweeps(clinic: Clinic, doctor: Staff) -> list[dict[str, Any]]:
    return [a for a in _of(clinic, doctor) if a["detector"] == "break-glass-volume"]


def _paced(clinic: Clinic, doctor: Staff, patients: list[str]) -> int | None:
    """A grant (and a read) every ``PACE_SECONDS`` until a sweep alert is listed; the
    1-based number of the grant after which it was (None: never)."""
    for n, patient in enumerate(patients, 1):
        _break_glass(clinic, doctor, [patient])
        clinic.clock.advance(PACE_SECONDS - 5)  # ``_break_glass`` moved on 5 s
        if _sweeps(clinic, doctor):
            return n
    return None


def test_nineteen_grants_a_day_every_day_are_a_sweep_within_the_week(many: Clinic) -> None:
    clinic = many
    doctor = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-b"])
    # Within every hour's 5 and every day's 20; the week allows 40: the 41st is a sweep.
    assert _paced(clinic, doctor, clinic.patients[: DAYS * PER_DAY]) == 41
    (first,) = _sweeps(clinic, doctor)
    assert "within a week" in str(first["explanation"])
    assert first["severity"] == "medium"
    assert first["patient_count"] == 41


def test_the_weeks_grants_outlive_a_restart(many: Clinic, reopened: list[Services]) -> None:
    """Two days of grants (38, more than the replay's 25 hours hold), a restart, and the
    third patient of the third day is still the week's 41st."""
    clinic = many
    doctor = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-b"])
    assert _paced(clinic, doctor, clinic.patients[:38]) is None
    settings = clinic.services.settings
    clinic.services.close()
    again = build_services(settings, clock=clinic.clock)
    reopened.append(again)
    with FhirTestClient(create_app(again.settings, again)) as web:
        restarted = replace(clinic, services=again, web=web)
        assert _paced(restarted, doctor, clinic.patients[38:41]) == 3
        (alert,) = _sweeps(restarted, doctor)
    assert "within a week" in str(alert["explanation"])


def test_covering_a_colleagues_clinic_two_days_a_week_raises_nothing(many: Clinic) -> None:
    """Mondays and Thursdays, 19 patients each (five an hour for four hours), none seen
    twice: at most 38 in any seven days, within the week's 40."""
    clinic = many
    doctor = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-b"])
    patients = iter(clinic.patients)
    for gap_days in (0, 3, 4):  # Monday, Thursday, the next Monday
        # Each covering day begins at the hour the first did: the next Monday's grants
        # come as the last Monday's leave the seven days.
        clinic.clock.advance(max(0, gap_days * 24 - 4) * 3600)
        for hour in range(4):
            _break_glass(clinic, doctor, [next(patients) for _ in range(5 if hour < 3 else 4)])
            clinic.clock.advance(3600 - (5 if hour < 3 else 4) * 5)
        assert _sweeps(clinic, doctor) == []
