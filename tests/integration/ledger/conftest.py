"""Staff with tokens for in-process tests of the ledger's HTTP face."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.web.app import create_app
from tests.support.client import FhirTestClient
from tests.support.staff import make_staff

CLINIC = "clinic-a"

StaffToken = Callable[[Role], str]


@pytest.fixture
def web(services: Services) -> Iterator[FhirTestClient]:
    """The app as a real deployment runs it: every request needs a bearer token."""
    with FhirTestClient(create_app(services.settings, services)) as client:
        yield client


@pytest.fixture
def staff_token(services: Services, api: FhirTestClient) -> StaffToken:
    """A token for a new staff member of ``role`` at clinic-a."""
    api.put_json(
        f"/fhir/Organization/{CLINIC}",
        {"resourceType": "Organization", "id": CLINIC, "name": "Clinic A"},
    )

    def token(role: Role) -> str:
        return make_staff(services, role, [CLINIC]).token

    return token


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def patient(web: FhirTestClient, token: str, family: str) -> str:
    """A new patient of ``CLINIC`` written by the holder of ``token``: their id."""
    response = web.post_json(
        "/fhir/Patient",
        {
            "resourceType": "Patient",
            "name": [{"family": family, "given": ["Mei"]}],
            "managingOrganization": {"reference": f"Organization/{CLINIC}"},
        },
        **bearer(token),
    )
    assert response.status_code == 201, response.text
    patient_id: str = response.json()["id"]
    return patient_id
