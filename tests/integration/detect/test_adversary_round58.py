"""Adversary round 58, bursts and snooping split across a person's logins: a practitioner
holding two logins (both naming one Practitioner) fishes with searches by initials or by
name, guesses registrations, is refused again and again, calls ``$everything``, or opens
namesakes' records, half with each login: neither login alone went past what raises
``name-fishing``, ``name-searches``, ``registration-fishing``, ``denials``,
``everything-calls`` or ``same-surname``; the person did (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from carevault.detect import alerts_as_dicts
from carevault.detect.desk import OfficerCode
from carevault.domain.roles import Role
from tests.integration.access.group import register_body
from tests.integration.detect.conftest import (
    WATCH_ALLOWED,
    Clinic,
    clinic_patients,
    opened_clinic,
    raising_clinic,
    watched_settings,
)
from tests.integration.detect.test_snooping import HOME
from tests.integration.detect.test_snooping import _hkid as snooped_hkid
from tests.integration.detect.test_snooping import _patient as snooped_patient
from tests.integration.detect.test_step_up import (
    _registered_by_a_colleague,
    _step_up_after_opening_own_record,
)
from tests.support.staff import Staff, make_staff


@pytest.fixture
def clinic(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    with raising_clinic(
        backend,
        tmp_path,
        request,
        clinic_patients(12, "Lee", "Siu Ming"),
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


def _two_logins(clinic: Clinic, practitioner: str) -> tuple[Staff, Staff]:
    """Two front-desk logins of clinic A naming ``practitioner`` (one person)."""
    return (
        make_staff(clinic.services, Role.FRONT_DESK, ["clinic-a"], practitioner),
        make_staff(clinic.services, Role.FRONT_DESK, ["clinic-a"], practitioner),
    )


def test_refusals_split_across_two_logins_of_one_person_are_a_burst(clinic: Clinic) -> None:
    """Ten refused requests with each login in ten minutes: twenty, as many as raise
    ``denials`` for one login (a desk trying the charts it may not read)."""
    first, second = _two_logins(clinic, "ms-probe")
    patient = clinic.patients[0]
    for who in (first, second):
        for _ in range(10):
            refused = clinic.web.get(f"/fhir/Condition?patient={patient}", headers=who.headers)
            assert refused.status_code == 403, refused.text
    (alert,) = _alerts(clinic, "denials")
    assert alert["account"] == second.account.username
    assert alert["explanation"].startswith("20 refused requests in 10 minutes with the logins")


def test_everything_calls_split_across_two_logins_of_one_person_are_too_many(
    clinic: Clinic,
) -> None:
    """Six patients' ``$everything`` with each login in an hour: twelve, past the ten
    of ``everything-calls`` that neither login alone passed."""
    first, second = _two_logins(clinic, "ms-everything")
    for start, who in ((0, first), (6, second)):
        for n in range(start, start + 6):
            patient = clinic.patients[n]
            called = clinic.web.get(f"/fhir/Patient/{patient}/$everything", headers=who.headers)
            assert called.status_code == 200, called.text
    (alert,) = _alerts(clinic, "everything-calls")
    assert alert["account"] == second.account.username
    assert alert["explanation"].startswith("$everything of 12 patients with the logins")


def test_registration_guesses_split_across_two_logins_of_one_person_fish(clinic: Clinic) -> None:
    """Three ``$register`` misses with the desk login, then three with the nurse login
    (the throttle, counting the person since round 57, refuses the sixth): the alert that
    comes with the first refusal for one login came for neither."""
    desk = make_staff(clinic.services, Role.FRONT_DESK, ["clinic-a"], "ms-guess")
    nurse = make_staff(clinic.services, Role.NURSE, ["clinic-a"], "ms-guess")
    statuses = [
        clinic.web.post_json(
            "/fhir/Patient/$register",
            register_body("C668668(9)", f"1982-11-{n + 3:02d}"),
            **who.headers,
        ).status_code
        for n, who in enumerate([desk] * 3 + [nurse] * 3)
    ]
    assert statuses == [404] * 5 + [429], statuses
    (alert,) = _alerts(clinic, "registration-fishing")
    assert alert["account"] == nurse.account.username
    assert "with the logins of one practitioner" in alert["explanation"]


def test_name_searches_split_across_two_logins_of_one_person_are_a_burst(clinic: Clinic) -> None:
    """Sixteen searches by name with a physician's login and sixteen with a nurse's of
    the same person in an hour: 32, past the 30 of ``name-searches``."""
    physician = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-names")
    nurse = make_staff(clinic.services, Role.NURSE, ["clinic-a"], "dr-names")
    for who in (physician, nurse):
        for n in range(16):
            found = clinic.web.get(f"/fhir/Patient?family=Lee{n % 4}", headers=who.headers)
            assert found.status_code == 200, found.text
    (alert,) = _alerts(clinic, "name-searches")
    assert alert["account"] == nurse.account.username
    assert "with the logins of one practitioner" in alert["explanation"]


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


@pytest.fixture
def watched_clinic(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Clinic]:
    """A clinic whose watch after a step-up allows three unexplained patients, and eight
    patients another desk registered (the watch does not count what a login created)."""
    settings = watched_settings(backend, tmp_path, request)
    with opened_clinic(settings, clinic_patients(0)) as opened:
        opened.patients[:] = _registered_by_a_colleague(opened, 8)
        yield opened


def test_the_watch_after_a_step_up_counts_both_logins_of_the_person_together(
    watched_clinic: Clinic,
) -> None:
    """Whoever passed the step-up of Dr Wong's first login (a phished password and TOTP
    seed) opens two unexplained patients with it and two with the second login: four,
    past the allowance of three, which each login was held to alone."""
    clinic = watched_clinic
    stepped = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-wong")
    other = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-wong")
    _step_up_after_opening_own_record(clinic, stepped)
    assert [clinic.read(stepped, patient) for patient in clinic.patients[:2]] == [200] * 2
    assert [clinic.read(other, patient) for patient in clinic.patients[2:4]] == [200] * 2
    (watch,) = _alerts(clinic, "after-step-up")
    assert watch["account"] == other.account.username
    assert watch["patient_count"] == WATCH_ALLOWED + 1
    assert "with the logins of one practitioner" in watch["explanation"]
    assert clinic.read(other, clinic.patients[4]) != 200


def _phoned(family: str, lines: list[str], hkid: str | None = None) -> dict[str, Any]:
    """A patient of clinic A at the household's telephone number."""
    return {
        **snooped_patient(family, lines, hkid),
        "telecom": [{"system": "phone", "value": PHONE}],
    }


PHONE = "+852 2345 6789"


def test_ones_own_and_a_household_members_record_found_by_telephone_are_picks(
    clinic: Clinic,
) -> None:
    """HR recorded the desk's home and HKID; the desk searches ``Patient?phone=`` with
    the household's number: its answer holds the desk's own record and the spouse's, two
    patients, so neither was taken for a pick (a broad search's other matches were not
    chosen) and neither ``own-record`` nor ``same-address`` was raised, where a list of
    two numbers, or a search that found one, picks each."""
    detection = clinic.services.detection
    assert detection is not None
    officer = OfficerCode(clinic.officer.account.username, clinic.officer.totp())
    detection.desk.identify(
        officer, clinic.desk.account.username, address_lines=HOME, hkid=snooped_hkid(1)
    )
    for body in (
        _phoned("Wong", HOME, snooped_hkid(1)),
        _phoned("Lee", ["FLAT A 3/F", "12 HILL ROAD"]),
    ):
        made = clinic.web.post_json("/fhir/Patient", body, **clinic.desk.headers)
        assert made.status_code == 201, made.text
    found = clinic.web.get("/fhir/Patient", params={"phone": PHONE}, headers=clinic.desk.headers)
    assert found.status_code == 200, found.text
    assert found.json()["total"] == 2
    assert {a["detector"] for a in alerts_as_dicts(clinic.services)} >= {
        "own-record",
        "same-address",
    }
