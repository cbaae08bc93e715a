"""A small clinic group for export tests: two clinics, patients with observations, an
integration client granted system/*.read at one clinic, and two privacy officers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.export.worker import ExportWorker
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller
from carevault.vault.writer import Put
from carevault.web.app import create_app
from tests.integration.access.browser import basic
from tests.support.client import FhirTestClient
from tests.support.staff import Staff, make_staff

MINE, OTHER = "clinic-a", "clinic-b"
SYSTEM = Caller(principal="system:test", purpose="HOPERAT")


def patient(patient_id: str, clinic: str, family: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": patient_id,
        "name": [{"family": family, "given": ["Tai Man"]}],
        "birthDate": "1980-02-03",
        "managingOrganization": {"reference": f"Organization/{clinic}"},
    }


def observation(observation_id: str, patient_id: str, value: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": observation_id,
        "status": "final",
        "code": {"text": "body weight"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "valueQuantity": {"value": float(value), "unit": "kg"},
    }


def put(services: Services, *resources: dict[str, Any]) -> None:
    services.gate.write(
        SYSTEM,
        [Put(RESOURCE_TYPES[r["resourceType"]], r["id"], r) for r in resources],
    )


@dataclass
class Clinic:
    services: Services
    web: FhirTestClient
    #: Patient ids at MINE (the exporter's clinic) and at OTHER.
    mine: list[str]
    other: list[str]
    officers: list[Staff]

    def client(self, client_id: str, scopes: str, clinics: list[str] | None = None) -> str:
        """A client-credentials token of a confidential app granted ``scopes``."""
        _, secret = self.services.admin.add_client(
            "admin:test",
            client_id,
            "Exporter",
            confidential=True,
            scopes=scopes,
            clinic_ids=clinics or [MINE],
        )
        assert secret
        response = self.web.post(
            "/auth/token",
            data={"grant_type": "client_credentials", "scope": scopes},
            headers=basic(client_id, secret),
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def work(self, max_batches: int | None = None) -> int:
        assert self.services.exports is not None
        return ExportWorker(self.services.exports, "test-worker").run_once(max_batches)


@pytest.fixture
def clinic(services: Services) -> Iterator[Clinic]:
    put(
        services,
        *({"resourceType": "Organization", "id": c, "name": c} for c in (MINE, OTHER)),
        {"resourceType": "Practitioner", "id": "dr-wong", "name": [{"family": "Wong"}]},
    )
    mine = [f"pa{i}" for i in range(5)]
    other = [f"pb{i}" for i in range(2)]
    for index, patient_id in enumerate(mine + other):
        home = MINE if patient_id in mine else OTHER
        put(
            services,
            patient(patient_id, home, f"Family{index}"),
            observation(f"o-{patient_id}-1", patient_id, "61.50"),
            observation(f"o-{patient_id}-2", patient_id, "62.25"),
        )
    officers = [make_staff(services, Role.PRIVACY_OFFICER, [MINE]) for _ in range(2)]
    with FhirTestClient(create_app(services.settings, services)) as web:
        yield Clinic(services, web, mine, other, officers)


def scope_of_client(clinic: Clinic, client_id: str, since: datetime) -> dict[str, Any]:
    """``incident scope --format json`` of an incident declared on ``client_id`` from
    ``since``, through the admin API (as the CLI computes it)."""
    headers = clinic.officers[0].headers
    case = {
        "title": "the exporter's secret leaked",
        "clients": [client_id],
        "since": since.isoformat(),
        "until": (datetime.now(UTC) + timedelta(seconds=1)).isoformat(),
    }
    created = clinic.web.post("/admin/incidents", json=case, headers=headers)
    assert created.status_code == 201, created.text
    scope = clinic.web.get(
        f"/admin/incidents/{created.json()['id']}/scope?format=json", headers=headers
    )
    assert scope.status_code == 200, scope.text
    document: dict[str, Any] = scope.json()
    return document
