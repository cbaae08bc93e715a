"""Staff with tokens for in-process tests of the ledger's HTTP face."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.web.app import create_app
from tests.support.client import FhirTestClient

CLINIC = "clinic-a"

StaffToken = Callable[[Role], str]


@pytest.fixture
def web(services: Services) -> Iterator[FhirTestClient]:
    """The app as a real deployment runs it: every request needs a bearer token."""
    with FhirTestClient(create_app(services.settings, services)) as client:
        yield client


@pytest.fixture
def staff_token(services: Services, api: FhirTestClient) -> StaffToken:
    """A token for a new staff member of ``role`` at clinic-a (created once)."""
    api.put_json(
        f"/fhir/Organization/{CLINIC}",
        {"resourceType": "Organization", "id": CLINIC, "name": "Clinic A"},
    )
    services.clients.add(
        "test-app",
        "Test app",
        confidential=False,
        scopes="user/*.cruds",
        redirect_uris=["http://127.0.0.1/callback"],
    )

    def token(role: Role) -> str:
        account, _ = services.accounts.add(
            f"{role.value.replace('_', '')}{len(services.accounts.all())}",
            f"Test {role.value}",
            role,
            [CLINIC],
            "correct horse battery staple",
        )
        pair = services.sessions.open(
            subject=account.account_id,
            account_id=account.account_id,
            client_id="test-app",
            scope="user/*.cruds",
            with_refresh=False,
            source_address="127.0.0.1",
            user_agent="tests",
        )
        return pair.access_token

    return token


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}
