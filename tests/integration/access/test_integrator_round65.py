"""SMART Backend Services as the round 65 integrator signed in (a Node client checking
each scope it asked for in the token response): v2 scopes asked apart, answered apart."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from carevault.bootstrap import Services
from tests.integration.access import backend_service
from tests.integration.access.browser import bearer
from tests.integration.access.conftest import MovableClock
from tests.support.client import FhirTestClient

SERVICE = "int65-feed"
KID = "k1"


@pytest.fixture
def service(auth_services: Services, private_key: rsa.RSAPrivateKey) -> None:
    backend_service.register(
        auth_services, private_key, SERVICE, "Round 65 feed", "system/*.cruds", KID
    )


@pytest.mark.usefixtures("service")
@pytest.mark.parametrize(
    ("asked", "answered"),
    [
        ("system/Patient.r system/Patient.s", ["system/Patient.r", "system/Patient.s"]),
        ("system/*.rs system/*.read", ["system/*.rs", "system/*.read"]),
        ("system/*.c system/*.rs", ["system/*.c", "system/*.rs"]),
    ],
)
def test_v2_scopes_asked_apart_are_each_answered(
    web: FhirTestClient,
    private_key: rsa.RSAPrivateKey,
    clock: MovableClock,
    asked: str,
    answered: list[str],
) -> None:
    """``system/Patient.r system/Patient.s`` was answered ``system/Patient.rs``, and
    ``system/*.rs system/*.read`` as ``system/*.rs`` (the v1 word dropped): a client
    checking each scope it asked for found some missing. Each is answered as asked; the
    token reads and searches as before."""
    response = backend_service.token(
        web,
        private_key,
        clock,
        SERVICE,
        KID,
        asked,
        discovery="/fhir/.well-known/smart-configuration",
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"].split() == answered
    headers = bearer(body["access_token"])
    assert web.get("/fhir/Patient?_count=1", headers=headers).status_code == 200
