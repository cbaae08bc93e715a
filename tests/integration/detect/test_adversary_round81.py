"""Adversary round 81 (detection evasion): reads that the clinic's care explains, taken
by accounts whose work is no patient's care.

A desk's booking explains every other account's reads of the patient booked, a billing
clerk's and a client app's too. ``breadth`` counted only unexplained patients, so a
stolen billing login, or a laboratory feed's stolen secret, paged every patient the
clinic had booked (400, in a fifth of a second) and raised nothing: only the release
budget (thousands an hour for these roles) bounded them. Care explains nothing a billing
clerk or a client opens now (``signals.care_explains_none``): every patient counts
towards ``breadth``, against these roles' floors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from carevault.detect import alerts_as_dicts
from carevault.domain.roles import Role
from tests.integration.detect.conftest import (
    FEED,
    Clinic,
    bound_feed,
    clinic_patients,
    feed_token,
    raising_clinic,
)
from tests.support.staff import make_staff

pytestmark = pytest.mark.postgres

#: More than the billing floor (80 in ten minutes) and the integration one (300).
PATIENTS = 320


@contextmanager
def booked_clinic(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    """Clinic A whose desk booked each of its patients for today (the care that explains
    the reads), its detectors raising alerts and taking no response."""
    with raising_clinic(
        backend,
        tmp_path,
        request,
        clinic_patients(PATIENTS),
        rate_limit_account_per_second=0,
        rate_limit_source_per_second=0,
    ) as clinic:
        clinic.book_everyone(datetime.now(UTC).replace(microsecond=0))
        assert alerts_as_dicts(clinic.services) == []
        yield clinic


def _page_every_patient(clinic: Clinic, headers: dict[str, str]) -> set[str]:
    """``Patient?_count=100`` followed to its last page; the ids it gave."""
    ids: set[str] = set()
    url: str | None = "/fhir/Patient?_count=100"
    while url is not None:
        response = clinic.web.get(url, headers=headers)
        assert response.status_code == 200, response.text
        bundle: dict[str, Any] = response.json()
        ids.update(entry["resource"]["id"] for entry in bundle.get("entry", []))
        following = [link["url"] for link in bundle.get("link", []) if link["relation"] == "next"]
        url = "/fhir" + following[0].split("/fhir", 1)[1] if following else None
    return ids


def test_a_billing_login_paging_the_booked_patients_raises_breadth(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with booked_clinic(backend, tmp_path, request) as clinic:
        clerk = make_staff(clinic.services, Role.BILLING, ["clinic-a"])
        assert len(_page_every_patient(clinic, clerk.headers)) == PATIENTS
        raised = [
            (alert["detector"], alert["severity"])
            for alert in alerts_as_dicts(clinic.services)
            if alert["account"] == clerk.account.username
        ]
        assert ("breadth", "high") in raised, raised


def test_a_feeds_secret_paging_the_booked_patients_raises_breadth(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with booked_clinic(backend, tmp_path, request) as clinic:
        token = feed_token(clinic, bound_feed(clinic)).json()["access_token"]
        assert len(_page_every_patient(clinic, {"Authorization": f"Bearer {token}"})) == PATIENTS
        alerts = [
            a for a in alerts_as_dicts(clinic.services) if FEED in (a["client"], a["account"])
        ]
        # As the same reads without care do: ``slow-drip`` too (the review of stop 64).
        by_detector = {alert["detector"]: alert for alert in alerts}
        assert set(by_detector) == {"breadth", "slow-drip"}, alerts
        assert "with a care relationship or not" in by_detector["breadth"]["explanation"]
