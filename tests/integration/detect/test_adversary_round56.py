"""Adversary round 56, the release budget counted by person: a doctor with two logins
(both naming their ``Practitioner``) tries to get more than one person's share through
the second, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from carevault.detect import alerts_as_dicts
from carevault.detect.desk import OfficerCode, OfficerRefused
from carevault.domain.roles import Role
from tests.integration.detect.conftest import (
    CLINICIAN_BUDGET as BUDGET,
)
from tests.integration.detect.conftest import (
    Clinic,
)
from tests.support.staff import Staff, make_staff

#: A throttled login's share of the budget above (``detect.budget.THROTTLE_SHARE``).
SHARE = 3


@pytest.fixture
def clinic(clinicians_clinic: Clinic) -> Clinic:
    return clinicians_clinic


def _throttle(clinic: Clinic, username: str) -> None:
    """What the detectors' ``throttle`` response does to an account."""
    assert clinic.services.detection is not None
    clinic.services.detection.flags.set("throttle", f"staff:{username}", "system:detect")


def test_a_throttled_doctor_reads_no_faster_through_another_login_of_theirs(
    clinic: Clinic,
) -> None:
    """The detectors throttle the login a doctor was snooping with (a tenth of their
    budget). Their other login, naming the same Practitioner, read on at the full rate:
    the throttle slowed a login while the budget it cut was the person's."""
    snooping = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-wong")
    other = make_staff(clinic.services, Role.NURSE, ["clinic-a"], "dr-wong")
    _throttle(clinic, snooping.account.username)
    patients = clinic.patients
    assert [clinic.read(snooping, p) for p in patients[:SHARE]] == [200] * SHARE
    assert clinic.read(snooping, patients[SHARE]) == 429
    assert clinic.read(other, patients[SHARE]) == 429
    # Someone else, and the same login unthrottled, keep their own or full budget.
    colleague = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-lee")
    assert clinic.read(colleague, patients[SHARE]) == 200
    detection = clinic.services.detection
    assert detection is not None
    detection.flags.set("throttle", f"staff:{snooping.account.username}", "system:detect", on=False)
    assert clinic.read(other, patients[SHARE]) == 200


def test_a_login_naming_no_practitioner_is_not_held_by_anothers_throttle(
    clinic: Clinic,
) -> None:
    """Held: the person's throttle reaches only the logins naming that person; a desk
    login naming no practitioner (and so counting alone) keeps its own full share."""
    snooping = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-wong")
    lone = make_staff(clinic.services, Role.NURSE, ["clinic-a"])
    _throttle(clinic, snooping.account.username)
    assert [clinic.read(lone, p) for p in clinic.patients[:10]] == [200] * 10


def test_a_second_login_of_another_role_reaches_no_more_than_the_larger_limit(
    clinic: Clinic,
) -> None:
    """Held: a nurse's login and a doctor's of one person (each 30 a day here) together
    read 30 patients, not 60."""
    doctor = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-ho")
    nurse = make_staff(clinic.services, Role.NURSE, ["clinic-a"], "dr-ho")
    patients = clinic.patients
    assert [clinic.read(doctor, p) for p in patients[:20]] == [200] * 20
    assert [clinic.read(nurse, p) for p in patients[20:BUDGET]] == [200] * (BUDGET - 20)
    assert clinic.read(nurse, patients[BUDGET]) == 429
    assert clinic.read(doctor, patients[BUDGET]) == 429


def _alert_about(clinic: Clinic, who: Staff) -> dict[str, Any]:
    """The alert the release budget raises when ``who`` reads past it."""
    statuses = [clinic.read(who, patient) for patient in clinic.patients[: BUDGET + 2]]
    assert 429 in statuses
    mine = [a for a in alerts_as_dicts(clinic.services) if a["account"] == who.account.username]
    assert mine, "the budget refusal raised no alert"
    return mine[0]


def test_an_officer_does_not_dismiss_an_alert_about_their_own_doctors_login(
    clinic: Clinic,
) -> None:
    """Dr Wong is a physician and, with a second login, the clinic's privacy officer
    (both naming Practitioner dr-wong). Reading past the budget with the physician's
    login raises an alert about it; the officer's login dismissed it (the desk compared
    usernames), closing what was about its own person, as round 50 refused for one
    login. Another officer still handles it."""
    doctor = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-wong")
    officer = make_staff(clinic.services, Role.PRIVACY_OFFICER, ["clinic-a"], "dr-wong")
    alert = _alert_about(clinic, doctor)
    answer = clinic.web.post_json(
        f"/admin/alerts/{alert['id']}/dismiss",
        {"reason": "routine audit", "totp": officer.totp()},
        **officer.headers,
    )
    assert answer.status_code == 403, answer.text
    assert "another privacy officer" in answer.text
    [now] = [a for a in alerts_as_dicts(clinic.services) if a["id"] == alert["id"]]
    assert now["status"] == "open"
    detection = clinic.services.detection
    assert detection is not None
    with pytest.raises(OfficerRefused, match="another privacy officer"):
        detection.desk.unthrottle(
            OfficerCode(officer.account.username, officer.totp()), doctor.account.username
        )
    other = clinic.web.post_json(
        f"/admin/alerts/{alert['id']}/dismiss",
        {"reason": "routine audit", "totp": clinic.officer.totp()},
        **clinic.officer.headers,
    )
    assert other.status_code == 200, other.text


def test_an_officer_does_not_lift_the_suspension_of_their_own_doctors_login(
    clinic: Clinic,
) -> None:
    """Another officer suspends Dr Wong's physician login (containment
    ``account-suspended``); Dr Wong's officer login, naming the same Practitioner,
    released it (200) and the physician read on. Refused now (403), recorded; the
    suspension stands, and another officer releases it."""
    doctor = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-wong")
    officer = make_staff(clinic.services, Role.PRIVACY_OFFICER, ["clinic-a"], "dr-wong")
    started = clinic.web.post(
        "/admin/containment",
        json={
            "mode": "account-suspended",
            "target": doctor.account.username,
            "reason": "reading past the budget",
            "totp": clinic.officer.totp(),
        },
        headers=clinic.officer.headers,
    )
    assert started.status_code == 201, started.text
    containment = started.json()["id"]
    released = clinic.web.post(
        f"/admin/containment/{containment}/release",
        json={"reason": "my mistake", "totp": officer.totp()},
        headers=officer.headers,
    )
    assert released.status_code == 403, released.text
    assert "another privacy officer" in released.text
    account = clinic.services.accounts.find(doctor.account.username)
    assert account is not None and account.suspended
    by_another = clinic.web.post(
        f"/admin/containment/{containment}/release",
        json={"reason": "reviewed", "totp": clinic.officer.totp()},
        headers=clinic.officer.headers,
    )
    assert by_another.status_code == 200, by_another.text
