"""The release budget counts a person, not a login: a practitioner's accounts (a login
at each of two clinics, say) share one count, so a second login is no second budget
(adversary round 52 left this open). Other people keep budgets of their own."""

from __future__ import annotations

import pytest

from carevault.domain.roles import Role
from tests.integration.detect.conftest import (
    CLINICIAN_BUDGET as BUDGET,
)
from tests.integration.detect.conftest import (
    Clinic,
)
from tests.support.staff import Staff, make_staff


@pytest.fixture
def clinic(clinicians_clinic: Clinic) -> Clinic:
    return clinicians_clinic


def _statuses(clinic: Clinic, who: Staff, patients: list[str]) -> list[int]:
    return [clinic.read(who, patient) for patient in patients]


def test_two_logins_of_one_practitioner_share_one_budget(clinic: Clinic) -> None:
    first = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-wong")
    second = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-wong")
    patients = clinic.patients
    assert _statuses(clinic, first, patients[:20]) == [200] * 20
    # A patient the first login was given costs the second nothing more.
    assert _statuses(clinic, second, patients[:5]) == [200] * 5
    assert _statuses(clinic, second, patients[20:BUDGET]) == [200] * (BUDGET - 20)
    refused = clinic.web.get(f"/fhir/Patient/{patients[BUDGET]}", headers=second.headers)
    assert refused.status_code == 429
    diagnostics = refused.json()["issue"][0]["diagnostics"]
    assert "release budget" in diagnostics and "every account of theirs" in diagnostics
    assert clinic.read(first, patients[BUDGET + 1]) == 429


def test_each_login_is_held_to_its_own_roles_limits_on_the_persons_count(
    clinic: Clinic,
) -> None:
    """A practitioner with a physician's login and a desk's (whose budget is larger)
    reads no more through the physician's than its limit, counted with the desk's."""
    desk = make_staff(clinic.services, Role.FRONT_DESK, ["clinic-a"], "dr-lee")
    doctor = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-lee")
    patients = clinic.patients
    assert _statuses(clinic, desk, patients[:25]) == [200] * 25
    assert _statuses(clinic, doctor, patients[25:BUDGET]) == [200] * (BUDGET - 25)
    assert clinic.read(doctor, patients[BUDGET]) == 429
    # The desk's own limit (150 an hour by default) is not reached: it reads on.
    assert clinic.read(desk, patients[BUDGET]) == 200


def test_other_people_and_logins_without_a_practitioner_keep_their_own(
    clinic: Clinic,
) -> None:
    wong = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-wong")
    chan = make_staff(clinic.services, Role.NURSE, ["clinic-a"], "rn-chan")
    lone = make_staff(clinic.services, Role.NURSE, ["clinic-a"])
    patients = clinic.patients[:BUDGET]
    for who in (wong, chan, lone):
        assert _statuses(clinic, who, patients) == [200] * BUDGET
    assert clinic.read(lone, clinic.patients[BUDGET]) == 429
    refused = clinic.web.get(f"/fhir/Patient/{clinic.patients[BUDGET]}", headers=lone.headers)
    assert "the account" in refused.json()["issue"][0]["diagnostics"]
