"""Adversary round 59, fishing unseen: a front desk fishes for every Siu Ming with
``given=Siu Ming`` beside a criterion that narrows nothing (a birth date bound that holds
everyone, a family initial, the given name again in ``name``), which the gate took for a
search pinned down; or its tenth search by first name finds no one, and the alert it
made was dropped with it. Ten in an hour raised no ``name-fishing`` (SQLite and
PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from carevault.detect import alerts_as_dicts
from tests.integration.detect.conftest import Clinic, clinic_patients, raising_clinic

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
