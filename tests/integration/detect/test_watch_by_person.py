"""The watch after a step-up holds the person, not only the login: whoever passed Dr
Wong's step-up on one login (a phished password and TOTP seed) and reads on through
another login of the same practitioner is counted against the watch's allowance too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from carevault.detect import alerts_as_dicts
from carevault.domain.roles import Role
from tests.integration.detect.conftest import (
    WATCH_ALLOWED,
    Clinic,
    clinic_patients,
    opened_clinic,
    watched_settings,
)
from tests.integration.detect.test_step_up import (
    _registered_by_a_colleague,
    _step_up_after_opening_own_record,
)
from tests.support.staff import Staff, make_staff

ALLOWED = WATCH_ALLOWED


@pytest.fixture
def clinic(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    settings = watched_settings(backend, tmp_path, request)
    with opened_clinic(settings, clinic_patients(0)) as opened:
        # Records another desk wrote: the watch does not count those a login created.
        opened.patients[:] = _registered_by_a_colleague(opened, 8)
        yield opened


def _suspended(clinic: Clinic, who: Staff) -> bool:
    account = clinic.services.accounts.get(who.account.account_id)
    assert account is not None
    return account.suspended


def test_reading_on_through_another_login_after_a_step_up_suspends_it(clinic: Clinic) -> None:
    stepped = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-wong")
    other = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-wong")
    _step_up_after_opening_own_record(clinic, stepped)
    for patient in clinic.patients[:ALLOWED]:
        assert clinic.read(other, patient) == 200
    assert [a["detector"] for a in alerts_as_dicts(clinic.services)] == ["own-record"]
    assert clinic.read(other, clinic.patients[ALLOWED]) == 200
    alerts = {a["detector"]: a for a in alerts_as_dicts(clinic.services)}
    watch = alerts["after-step-up"]
    assert (watch["account"], watch["action"]) == (other.account.username, "suspend")
    assert f"the sessions of {stepped.account.username}, another login" in str(watch["explanation"])
    assert watch["patient_count"] == ALLOWED + 1
    assert _suspended(clinic, other)
    assert clinic.read(other, clinic.patients[ALLOWED + 1]) != 200


def test_another_persons_login_is_not_watched(clinic: Clinic) -> None:
    stepped = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-wong")
    colleague = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-chan")
    _step_up_after_opening_own_record(clinic, stepped)
    for patient in clinic.patients[: ALLOWED + 2]:
        assert clinic.read(colleague, patient) == 200
    assert [a["detector"] for a in alerts_as_dicts(clinic.services)] == ["own-record"]
    assert not _suspended(clinic, colleague)


def test_the_watch_of_the_other_login_is_rebuilt_after_a_restart(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = watched_settings(backend, tmp_path, request)
    with opened_clinic(settings, clinic_patients(0)) as clinic:
        patients = _registered_by_a_colleague(clinic, 8)
        stepped = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-wong")
        other = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-wong")
        _step_up_after_opening_own_record(clinic, stepped)
    # The server stops after the step-up; another starts and judges what follows.
    with opened_clinic(settings, clinic_patients(0)) as again:
        for patient in patients[: ALLOWED + 1]:
            assert again.read(other, patient) == 200
        watch = {a["detector"]: a for a in alerts_as_dicts(again.services)}["after-step-up"]
        assert (watch["account"], watch["action"]) == (other.account.username, "suspend")
