"""Adversary round 59, fishing unseen: a front desk fishes for every Siu Ming with
``given=Siu Ming`` beside a criterion that narrows nothing (a birth date bound that holds
everyone, a family initial, the given name again in ``name``), which the gate took for a
search pinned down; or its tenth search by first name finds no one, and the alert it
made was dropped with it. Ten in an hour raised no ``name-fishing``. And another
clinic's desk tests HKIDs against the group with ``If-None-Exist`` (or by writing each
onto a patient of its own): five refusals and the throttle's 429, as many misses as
raise ``registration-fishing`` for ``$register``, raised nothing (SQLite and
PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from carevault.detect import alerts_as_dicts
from carevault.domain.roles import Role
from carevault.fhir.normalise import HKID_SYSTEM
from tests.integration.detect.conftest import Clinic, clinic_patients, raising_clinic
from tests.integration.detect.test_snooping import _hkid
from tests.integration.detect.test_snooping import _patient as snooped_patient
from tests.support.client import FHIR_JSON
from tests.support.staff import make_staff

pytestmark = pytest.mark.postgres


@pytest.fixture
def clinic(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    with raising_clinic(backend, tmp_path, request, clinic_patients(4, "Lee", "Siu Ming")) as it:
        yield it


def _alerts(clinic: Clinic, detector: str) -> list[dict[str, Any]]:
    return [a for a in alerts_as_dicts(clinic.services) if a["detector"] == detector]


#: Beside ``given=Siu Ming``: each finds every Siu Ming whatever the family name.
NARROWING_NOTHING = ("birthdate=ge1900-01-01", "family=L", "name=Siu")


def test_first_name_searches_beside_criteria_that_narrow_nothing_fish(clinic: Clinic) -> None:
    for n in range(10):
        query = f"given=Siu%20Ming&{NARROWING_NOTHING[(n + 1) % 3]}"
        response = clinic.web.get(f"/fhir/Patient?{query}", headers=clinic.desk.headers)
        assert response.status_code == 200, response.text
    (fishing,) = _alerts(clinic, "name-fishing")
    assert fishing["account"] == clinic.desk.account.username
    assert fishing["explanation"].startswith("10 searches by first name only or by initials")


def test_a_tenth_search_by_first_name_that_finds_no_one_still_fishes(clinic: Clinic) -> None:
    for n in range(10):
        query = "given=Siu" if n < 9 else "given=Nobody"
        response = clinic.web.get(f"/fhir/Patient?{query}", headers=clinic.desk.headers)
        assert response.status_code == 200, response.text
        assert len(response.json().get("entry", [])) == (4 if n < 9 else 0)
    (fishing,) = _alerts(clinic, "name-fishing")
    assert fishing["explanation"].startswith("10 searches by first name only or by initials")


def test_first_name_searches_with_a_family_name_or_a_birth_date_are_no_fishing(
    clinic: Clinic,
) -> None:
    """Held: a desk finding the patient in front of it, by full name or date of birth."""
    for n in range(10):
        query = "given=Siu%20Ming&" + ("family=Lee" if n % 2 else "birthdate=1980-01-02")
        response = clinic.web.get(f"/fhir/Patient?{query}", headers=clinic.desk.headers)
        assert response.status_code == 200, response.text
    assert _alerts(clinic, "name-fishing") == []


@pytest.mark.parametrize("conditional", [True, False], ids=["if-none-exist", "written"])
def test_hkids_tested_against_the_group_by_writes_fish(clinic: Clinic, conditional: bool) -> None:
    held = clinic.web.post_json(
        "/fhir/Patient", snooped_patient("Yip", ["9 Kings Road"], _hkid(7)), **clinic.desk.headers
    )
    assert held.status_code == 201, held.text
    prober = make_staff(clinic.services, Role.FRONT_DESK, ["clinic-b"])
    statuses = []
    for _ in range(6):
        body = {
            "resourceType": "Patient",
            "identifier": [{"system": HKID_SYSTEM, "value": _hkid(7)}],
            "name": [{"family": "Yip"}],
            "managingOrganization": {"reference": "Organization/clinic-b"},
        }
        headers = {**prober.headers, **FHIR_JSON}
        if conditional:
            headers["If-None-Exist"] = f"identifier={HKID_SYSTEM}|{_hkid(7)}"
        sent = clinic.web.post("/fhir/Patient", content=json.dumps(body), headers=headers)
        statuses.append(sent.status_code)
    assert statuses == [409] * 5 + [429], statuses
    (alert,) = _alerts(clinic, "registration-fishing")
    assert alert["account"] == prober.account.username
