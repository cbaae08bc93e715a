"""One request may decrypt only so many records (``CAREVAULT_MAX_DECRYPTS_PER_REQUEST``):
a batch of decrypting searches shares the budget, so it cannot keep the server busy for
minutes; what is over budget is refused as too costly, and the rest answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from carevault.bootstrap import Services, build_services
from carevault.domain.roles import Role
from carevault.web.app import create_app
from tests.conftest import make_settings
from tests.support.client import FhirTestClient
from tests.support.staff import Staff, make_staff

BUDGET = 10
OBSERVATIONS = 6


@pytest.fixture
def small_budget(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[FhirTestClient, Staff, str]]:
    url = request.getfixturevalue("pg_schema") if backend == "postgres" else None
    settings = make_settings(tmp_path / "home", url, max_decrypts_per_request=BUDGET)
    services: Services = build_services(settings, create_keys=True, migrate=True)
    try:
        with FhirTestClient(create_app(settings, services)) as web:
            doctor = make_staff(services, Role.PHYSICIAN, ["clinic-a"])
            patient = _as_system(web, services, doctor)
            yield web, doctor, patient
    finally:
        services.close()


def _as_system(web: FhirTestClient, services: Services, doctor: Staff) -> str:
    desk = make_staff(services, Role.FRONT_DESK, ["clinic-a"])
    web.put_json(
        "/fhir/Organization/clinic-a",
        {"resourceType": "Organization", "id": "clinic-a", "name": "A"},
        **desk.headers,
    )
    patient = web.post_json(
        "/fhir/Patient", {"resourceType": "Patient", "name": [{"family": "Budget"}]}, **desk.headers
    ).json()["id"]
    visit = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"Patient/{patient}"},
        "serviceProvider": {"reference": "Organization/clinic-a"},
        "period": {"start": "2026-11-30T09:00:00+08:00"},
    }
    assert web.post_json("/fhir/Encounter", visit, **desk.headers).status_code == 201
    for number in range(OBSERVATIONS):
        made = web.post_json(
            "/fhir/Observation",
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": f"reading {number}"},
                "subject": {"reference": f"Patient/{patient}"},
                "effectiveDateTime": "2026-11-30T09:00:00+08:00",
            },
            **doctor.headers,
        )
        assert made.status_code == 201, made.text
    return patient


def test_a_batch_of_decrypting_searches_shares_one_budget(
    small_budget: tuple[FhirTestClient, Staff, str],
) -> None:
    web, doctor, patient = small_budget
    search = f"Observation?patient={patient}&date=ge2026-01-01"
    one = web.get(f"/fhir/{search}", headers=doctor.headers)
    assert one.status_code == 200
    assert one.json()["total"] == OBSERVATIONS
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": search}} for _ in range(3)],
    }

    answered = web.post_json("/fhir", batch, **doctor.headers)

    assert answered.status_code == 200
    statuses = [entry["response"]["status"] for entry in answered.json()["entry"]]
    assert statuses[0].startswith("200")
    assert statuses[1:] == ["400", "400"]
    issue = answered.json()["entry"][1]["response"]["outcome"]["issue"][0]
    assert issue["code"] == "too-costly"
    assert f"more than {BUDGET} records" in issue["diagnostics"]
