"""SMART Backend Services as the round 64 integrator signed in (httpx and PyJWT, a key
pair of its own): the scopes it asked for, answered in the words it used."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from carevault.bootstrap import Services
from tests.integration.access import backend_service
from tests.integration.access.browser import bearer
from tests.integration.access.conftest import MovableClock
from tests.support.client import FhirTestClient

SERVICE = "int64-feed"
KID = "k1"


@pytest.fixture
def service(auth_services: Services, private_key: rsa.RSAPrivateKey) -> None:
    """Registered with its public key set for every interaction on every type."""
    backend_service.register(
        auth_services, private_key, SERVICE, "Round 64 feed", "system/*.cruds", KID
    )


def _token(
    web: FhirTestClient, private_key: rsa.RSAPrivateKey, clock: MovableClock, scope: str
) -> Any:
    return backend_service.token(
        web,
        private_key,
        clock,
        SERVICE,
        KID,
        scope,
        discovery="/fhir/.well-known/smart-configuration",
    )


@pytest.mark.usefixtures("service")
@pytest.mark.parametrize(
    ("asked", "answered"),
    [
        ("system/*.read system/*.write", {"system/*.read", "system/*.write"}),
        (
            "system/Patient.read system/Patient.write",
            {"system/Patient.read", "system/Patient.write"},
        ),
        # Still one word where one was asked.
        ("system/*.*", {"system/*.*"}),
        ("system/*.read", {"system/*.read"}),
    ],
)
def test_v1_scopes_asked_as_read_and_write_are_answered_in_those_words(
    web: FhirTestClient,
    private_key: rsa.RSAPrivateKey,
    clock: MovableClock,
    asked: str,
    answered: set[str],
) -> None:
    """A service asking ``system/*.read system/*.write`` (SMART v1) was answered
    ``system/*.*``: v1, and the same interactions, but a client that looks for each scope
    it asked in the answer's list found neither, and read its request as refused (the
    case round 60 closed for ``system/*.read`` alone). The token means the same: it reads
    and writes."""
    response = _token(web, private_key, clock, asked)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body["scope"].split()) == answered
    headers = bearer(body["access_token"])
    made = web.post(
        "/fhir/Patient",
        json={"resourceType": "Patient", "name": [{"family": "Roundsixtyfour"}]},
        headers=headers,
    )
    assert made.status_code == (201 if "write" in asked or "*.*" in asked else 403), made.text
    assert web.get("/fhir/Patient?_count=1", headers=headers).status_code == 200
