"""A small clinic group for ``$import`` tests: two clinics with a few patients, and
integration clients (client-credentials tokens) made on demand."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.importjobs.service import ImportService
from carevault.importjobs.worker import ImportWorker
from carevault.ledger.events import AuditEvent, Tag
from carevault.web.app import create_app
from tests.integration.access.browser import basic, bearer
from tests.integration.export.conftest import MINE, OTHER, patient, put
from tests.support.client import FhirTestClient
from tests.support.staff import Staff, make_staff

WRITER = "system/*.cruds"
NDJSON = {"Content-Type": "application/fhir+ndjson", "Prefer": "respond-async"}


@dataclass
class Clinic:
    services: Services
    web: FhirTestClient
    officers: list[Staff]

    @property
    def imports(self) -> ImportService:
        assert self.services.imports is not None
        return self.services.imports

    def client(
        self,
        client_id: str,
        scopes: str = WRITER,
        clinics: list[str] | None = None,
        account: str | None = None,
    ) -> str:
        """A client-credentials token of a confidential app granted ``scopes``."""
        _, secret = self.services.admin.add_client(
            "admin:test",
            client_id,
            "Importer",
            confidential=True,
            scopes=scopes,
            clinic_ids=clinics or [MINE],
            account=account,
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

    def kick_off(self, token: str, body: bytes) -> str:
        response = self.web.post("/fhir/$import", content=body, headers={**bearer(token), **NDJSON})
        assert response.status_code == 202, response.text
        location: str = response.headers["content-location"]
        assert "/fhir/$import-status/" in location
        return location.rsplit("/", 1)[1]

    def status(self, token: str, job_id: str) -> Any:
        return self.web.get(f"/fhir/$import-status/{job_id}", headers=bearer(token))

    def work(self, max_batches: int | None = None) -> int:
        return ImportWorker(self.imports, "test-worker").run_once(max_batches)

    def events(self, tag: Tag, job_id: str | None = None) -> list[AuditEvent]:
        found = [
            AuditEvent.from_canonical(data)
            for _, data in self.services.audit_ledger.store.entries()
        ]
        return [
            e for e in found if e.tag is tag and (job_id is None or e.detail.get("job") == job_id)
        ]


@pytest.fixture
def clinic(services: Services) -> Iterator[Clinic]:
    put(
        services,
        *({"resourceType": "Organization", "id": c, "name": c} for c in (MINE, OTHER)),
        patient("pa0", MINE, "Family0"),
        patient("pb0", OTHER, "Family1"),
    )
    officers = [make_staff(services, Role.PRIVACY_OFFICER, [MINE]) for _ in range(2)]
    with FhirTestClient(create_app(services.settings, services)) as web:
        yield Clinic(services, web, officers)
