"""A small clinic for the detectors: patients, a front desk and a privacy officer."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from carevault.bootstrap import Services, build_services
from carevault.config import Settings
from carevault.domain.roles import Role
from carevault.web.app import create_app
from tests.conftest import make_settings
from tests.support.client import FhirTestClient
from tests.support.console import MovableClock
from tests.support.ledgers import patient_pseudonym
from tests.support.staff import PASSWORD, Staff, make_staff

PATIENTS = 45


@dataclass
class Clinic:
    services: Services
    web: FhirTestClient
    desk: Staff
    officer: Staff
    patients: list[str]
    #: The services' clock: the wall clock, moved forward where a test would wait for
    #: time to pass (it only ever moves forward, so staff codes stay valid).
    clock: MovableClock

    def read(self, who: Staff, patient: str) -> int:
        return int(self.web.get(f"/fhir/Patient/{patient}", headers=who.headers).status_code)

    def book_everyone(self, start: datetime, status: str = "booked") -> None:
        """The desk books each patient at clinic A at ``start`` (a quarter of an hour):
        care that explains every other account's reads of them."""
        for patient in self.patients:
            body = {
                "resourceType": "Appointment",
                "status": status,
                "start": start.isoformat(),
                "end": (start + timedelta(minutes=15)).isoformat(),
                "participant": [
                    {"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"},
                    {"actor": {"reference": "Organization/clinic-a"}, "status": "accepted"},
                ],
            }
            response = self.web.post_json("/fhir/Appointment", body, **self.desk.headers)
            assert response.status_code == 201, response.text


def clinic_settings(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, **options: Any
) -> Settings:
    """Settings for a clinic home on the test's backend, with ``options`` set."""
    url = request.getfixturevalue("pg_schema") if backend == "postgres" else None
    return make_settings(tmp_path / "home", url, **options)


def clinic_patients(
    count: int = PATIENTS, family: str = "Chan", given: str = "Tai Man"
) -> Iterator[dict[str, Any]]:
    """``count`` patients of clinic A (``family`` 0, 1, …), as the front desk registers them."""
    return (
        {
            "resourceType": "Patient",
            "name": [{"family": f"{family}{n}", "given": [given]}],
            "managingOrganization": {"reference": "Organization/clinic-a"},
        }
        for n in range(count)
    )


#: The watch's allowance after a step-up in ``watched_settings``: the fourth unexplained
#: patient suspends.
WATCH_ALLOWED = 3


def watched_settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """A clinic home whose watch after a step-up allows ``WATCH_ALLOWED`` unexplained
    patients, and whose picks of kin are judged at once."""
    return clinic_settings(
        backend,
        tmp_path,
        request,
        detect_after_step_up=WATCH_ALLOWED,
        detect_kin_grace_seconds=0,
    )


#: Alerts raised and no response taken: the test reads on after the first alert.
RAISE_ONLY = "medium=raise,high=raise,critical=raise"


@contextmanager
def raising_clinic(
    backend: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    patients: Iterable[dict[str, Any]],
    **options: Any,
) -> Iterator[Clinic]:
    """Clinic A with ``patients``, whose detectors raise alerts and take no response."""
    settings = clinic_settings(backend, tmp_path, request, detect_responses=RAISE_ONLY, **options)
    with opened_clinic(settings, patients) as opened:
        yield opened


@contextmanager
def vip_clinic(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, count: int
) -> Iterator[Clinic]:
    """A raising clinic of ``count`` famous patients, each flagged VIP by an officer."""
    with raising_clinic(
        backend, tmp_path, request, clinic_patients(count, "Star", "Famous")
    ) as opened:
        detection = opened.services.detection
        assert detection is not None
        for patient in opened.patients:
            detection.flags.set(
                "vip", patient_pseudonym(opened.services, patient), "staff:test-officer"
            )
        yield opened


@pytest.fixture
def detect_settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    return clinic_settings(
        backend,
        tmp_path,
        request,
        release_budget="front_desk=30/100",
        detect_kin_grace_seconds=0,
    )


@contextmanager
def opened_clinic(settings: Settings, patients: Iterable[dict[str, Any]]) -> Iterator[Clinic]:
    """Clinic A with a privacy officer and a front desk, who registers ``patients``."""
    clock = MovableClock()
    services = build_services(settings, create_keys=True, migrate=True, clock=clock)
    try:
        with FhirTestClient(create_app(services.settings, services)) as web:
            officer = make_staff(services, Role.PRIVACY_OFFICER, ["clinic-a"])
            desk = make_staff(services, Role.FRONT_DESK, ["clinic-a"])
            web.put_json(
                "/fhir/Organization/clinic-a",
                {"resourceType": "Organization", "id": "clinic-a", "name": "Clinic A"},
                **officer.headers,
            )
            ids = []
            for body in patients:
                response = web.post_json("/fhir/Patient", body, **desk.headers)
                assert response.status_code == 201, response.text
                ids.append(response.json()["id"])
            yield Clinic(services, web, desk, officer, ids, clock)
    finally:
        services.close()


@pytest.fixture
def clinic(detect_settings: Settings) -> Iterator[Clinic]:
    with opened_clinic(detect_settings, clinic_patients()) as opened:
        yield opened


#: Physicians' and nurses' release budget (distinct patients an hour) in
#: ``clinicians_clinic``.
CLINICIAN_BUDGET = 30


@pytest.fixture
def clinicians_clinic(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Clinic]:
    """Clinic A whose physicians and nurses have a budget of ``CLINICIAN_BUDGET``, its
    detectors raising alerts only: the tests read on with a person's other logins after
    the budget's alert, which the built-in response (suspend) would end for all of them
    (adversary round 57) as soon as the detectors' thread judged it."""
    budget = f"{CLINICIAN_BUDGET}/100"
    settings = clinic_settings(
        backend,
        tmp_path,
        request,
        release_budget=f"physician={budget},nurse={budget}",
        detect_responses=RAISE_ONLY,
    )
    with opened_clinic(settings, clinic_patients()) as opened:
        yield opened


#: A confidential client app acting for an integration account (a laboratory feed).
FEED = "lab-feed"


def bound_feed(clinic: Clinic) -> str:
    """Add the laboratory feed, bound to an integration account of clinic A; its secret."""
    services = clinic.services
    account, _ = services.accounts.add(
        "labfeed", "Lab feed", Role.INTEGRATION, ["clinic-a"], PASSWORD
    )
    _, secret = services.admin.add_client(
        "admin:test",
        FEED,
        "Laboratory feed",
        confidential=True,
        scopes="system/Patient.rs",
        clinic_ids=["clinic-a"],
        account=account.username,
    )
    assert secret
    return secret


def feed_token(clinic: Clinic, secret: str) -> Any:
    """The feed's client-credentials token request, as answered."""
    basic = base64.b64encode(f"{FEED}:{secret}".encode()).decode()
    return clinic.web.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "scope": "system/*.cruds"},
        headers={"authorization": f"Basic {basic}"},
    )
