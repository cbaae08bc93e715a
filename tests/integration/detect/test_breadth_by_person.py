"""The detectors' breadth counts a person, not a login, as the release budget does: a
practitioner reading 15 patients no care explains with each of two logins in ten
minutes read 30, past a physician's limit of 20, though neither login alone is past
it. Judged again after a restart (the person's windows are rebuilt from the ledger)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from carevault.bootstrap import build_services
from carevault.detect import alerts_as_dicts
from carevault.domain.roles import Role
from carevault.web.app import create_app
from tests.integration.detect.conftest import (
    Clinic,
    clinic_patients,
    clinic_settings,
    opened_clinic,
    raising_clinic,
)
from tests.support.client import FhirTestClient
from tests.support.staff import Staff, make_staff


@pytest.fixture
def clinic(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    with raising_clinic(backend, tmp_path, request, clinic_patients()) as opened:
        yield opened


def _read(clinic: Clinic, who: Staff, patients: list[str]) -> None:
    assert [clinic.read(who, patient) for patient in patients] == [200] * len(patients)


def _breadth(clinic: Clinic) -> list[dict[str, object]]:
    return [a for a in alerts_as_dicts(clinic.services) if a["detector"] == "breadth"]


def test_two_logins_of_one_practitioner_together_past_the_limit_raise_breadth(
    clinic: Clinic,
) -> None:
    first = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-wong")
    second = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-wong")
    _read(clinic, first, clinic.patients[:15])
    _read(clinic, second, clinic.patients[15:30])
    (alert,) = _breadth(clinic)
    assert alert["account"] == second.account.username
    assert "with the logins of one practitioner" in str(alert["explanation"])
    assert first.account.username in str(alert["explanation"])
    # Every patient the person read is named, the first login's too.
    assert alert["patient_count"] == 30


def test_two_people_reading_as_much_raise_nothing(clinic: Clinic) -> None:
    wong = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-wong")
    chan = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-chan")
    lone = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"])
    _read(clinic, wong, clinic.patients[:15])
    _read(clinic, chan, clinic.patients[15:30])
    _read(clinic, lone, clinic.patients[30:45])
    assert _breadth(clinic) == []


def test_a_restart_between_the_logins_reads_still_counts_them_together(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = clinic_settings(
        backend, tmp_path, request, detect_responses="medium=raise,high=raise,critical=raise"
    )
    with raising_clinic(backend, tmp_path, request, clinic_patients()) as clinic:
        first = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-wong")
        second = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-wong")
        _read(clinic, first, clinic.patients[:15])
        assert _breadth(clinic) == []
        clinic.services.close()  # the server stops: its detectors judged 15 reads
        again = build_services(settings)
        try:
            with FhirTestClient(create_app(again.settings, again)) as web:
                for patient in clinic.patients[15:30]:
                    response = web.get(f"/fhir/Patient/{patient}", headers=second.headers)
                    assert response.status_code == 200
            alerts = [a for a in alerts_as_dicts(again) if a["detector"] == "breadth"]
        finally:
            again.close()
    (alert,) = alerts
    assert alert["account"] == second.account.username
    assert alert["patient_count"] == 30


def test_each_login_that_reads_on_past_the_persons_limit_is_paused(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """With the default responses: the login that took the person past the limit is
    paused for a fresh code, and the other, reading on, is paused at its next patient."""
    settings = clinic_settings(backend, tmp_path, request)
    with opened_clinic(settings, clinic_patients()) as clinic:
        first = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-wong")
        second = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-wong")
        _read(clinic, first, clinic.patients[:15])
        _read(clinic, second, clinic.patients[15:21])
        (alert,) = _breadth(clinic)
        assert (alert["account"], alert["action"]) == (second.account.username, "step-up")
        assert clinic.read(second, clinic.patients[21]) == 401
        _read(clinic, first, clinic.patients[22:23])
        actions = {(a["account"], a["action"]) for a in _breadth(clinic)}
        assert (first.account.username, "step-up") in actions
        assert clinic.read(first, clinic.patients[23]) == 401
