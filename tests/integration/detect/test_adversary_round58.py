"""Adversary round 58, snooping split across a person's logins: a practitioner holding a
front-desk and a nurse login (both naming one Practitioner) fishes for people they know
with searches by initials, five with each login in an hour, or opens namesakes' records,
three with each: neither login alone went past what raises ``name-fishing`` or
``same-surname``, the person did (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from carevault.detect import alerts_as_dicts
from carevault.domain.roles import Role
from tests.integration.detect.conftest import Clinic, clinic_patients, raising_clinic
from tests.support.staff import Staff, make_staff


@pytest.fixture
def clinic(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    with raising_clinic(
        backend,
        tmp_path,
        request,
        clinic_patients(4, "Lee", "Siu Ming"),
        detect_kin_grace_seconds=0,
    ) as opened:
        yield opened


def _alerts(clinic: Clinic, detector: str) -> list[dict[str, Any]]:
    return [a for a in alerts_as_dicts(clinic.services) if a["detector"] == detector]


def _fish(clinic: Clinic, who: Staff, times: int) -> None:
    for n in range(times):
        query = "given=Siu" if n % 2 else "name=S&_count=5"
        response = clinic.web.get(f"/fhir/Patient?{query}", headers=who.headers)
        assert response.status_code == 200, response.text


def test_searches_by_initials_split_across_two_logins_of_one_person_fish(clinic: Clinic) -> None:
    """Five searches by initials with the desk login, five with the nurse login, in an
    hour: ten, as many as raise ``name-fishing`` for one login."""
    desk = make_staff(clinic.services, Role.FRONT_DESK, ["clinic-a"], "ms-split")
    nurse = make_staff(clinic.services, Role.NURSE, ["clinic-a"], "ms-split")
    _fish(clinic, desk, 5)
    _fish(clinic, nurse, 5)
    (alert,) = _alerts(clinic, "name-fishing")
    assert alert["account"] == nurse.account.username
    assert "with the logins of one practitioner" in alert["explanation"]
    assert alert["explanation"].startswith("10 searches by first name only or by initials")


def test_searches_by_initials_of_two_people_are_not_counted_together(clinic: Clinic) -> None:
    """Held: two people's five searches each are no one's ten."""
    _fish(clinic, make_staff(clinic.services, Role.FRONT_DESK, ["clinic-a"], "ms-one"), 5)
    _fish(clinic, make_staff(clinic.services, Role.NURSE, ["clinic-a"], "ms-two"), 5)
    assert _alerts(clinic, "name-fishing") == []


@pytest.fixture
def namesakes_clinic(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Clinic]:
    """Clinic A with 40 patients of other surnames and 6 Wongs (13 %)."""
    bodies = [_patient(f"Lee{n}", [f"{n} Nathan Road"]) for n in range(40)]
    bodies += [_patient("Wong", [f"{n} Java Road"]) for n in range(6)]
    with raising_clinic(backend, tmp_path, request, bodies, detect_kin_grace_seconds=0) as opened:
        yield opened


def test_namesakes_opened_three_with_each_of_two_logins_are_past_chance(
    namesakes_clinic: Clinic,
) -> None:
    """HR recorded Ms Wong's surname; she opens three Wongs with her desk login and three
    with her nurse login (both naming one Practitioner), no care explaining any: three of
    three is about 1 in 450 for one login, six of six about 1 in 200,000 for her."""
    clinic = namesakes_clinic
    detection = clinic.services.detection
    assert detection is not None
    desk = make_staff(clinic.services, Role.FRONT_DESK, ["clinic-a"], "ms-wong")
    nurse = make_staff(clinic.services, Role.NURSE, ["clinic-a"], "ms-wong")
    detection.kinship.identify(f"staff:{desk.account.username}", "test:hr", surname="WONG")
    wongs = clinic.patients[40:]
    assert [clinic.read(desk, patient) for patient in wongs[:3]] == [200] * 3
    assert [clinic.read(nurse, patient) for patient in wongs[3:]] == [200] * 3
    (alert,) = _alerts(clinic, "same-surname")
    assert alert["account"] == nurse.account.username
    assert alert["patient_count"] == 6
    assert "with the logins of one practitioner" in alert["explanation"]


def test_namesakes_opened_by_two_people_are_each_their_own(namesakes_clinic: Clinic) -> None:
    """Held: two Wongs (two people), three namesakes each: chance for each."""
    clinic = namesakes_clinic
    detection = clinic.services.detection
    assert detection is not None
    wongs = clinic.patients[40:]
    for n, who in enumerate(("mr-wong", "mrs-wong")):
        login = make_staff(clinic.services, Role.FRONT_DESK, ["clinic-a"], who)
        detection.kinship.identify(f"staff:{login.account.username}", "test:hr", surname="WONG")
        reads = [clinic.read(login, patient) for patient in wongs[3 * n : 3 * n + 3]]
        assert reads == [200] * 3
    assert _alerts(clinic, "same-surname") == []


def _patient(family: str, lines: list[str]) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "name": [{"family": family, "given": ["Siu Ming"]}],
        "address": [{"use": "home", "line": lines}],
        "managingOrganization": {"reference": "Organization/clinic-a"},
    }
