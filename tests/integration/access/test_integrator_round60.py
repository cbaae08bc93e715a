"""SMART Backend Services as a hospital's integration team signs in (integrator round
60): a key pair of its own, a JWT client assertion made with PyJWT as the spec's worked
example makes it, and the token response read as the spec describes it."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from carevault.bootstrap import Services
from carevault.ledger.events import Tag
from tests.integration.access import backend_service
from tests.integration.access.audit_log import events
from tests.integration.access.browser import bearer
from tests.integration.access.conftest import MovableClock
from tests.support.client import FhirTestClient

SERVICE = "bili_monitor"
KID = "bili-1"


@pytest.fixture
def service(auth_services: Services, private_key: rsa.RSAPrivateKey) -> None:
    """Registered with its public key set, for reading and searching every type."""
    backend_service.register(
        auth_services, private_key, SERVICE, "Bilirubin monitor", "system/*.rs", KID
    )


def _token(
    web: FhirTestClient, private_key: rsa.RSAPrivateKey, clock: MovableClock, scope: str
) -> Any:
    return backend_service.token(web, private_key, clock, SERVICE, KID, scope)


@pytest.mark.usefixtures("service")
@pytest.mark.parametrize(
    ("asked", "answered"),
    [
        # The Bulk Data IG's own example scope, SMART v1.
        ("system/*.read", {"system/*.read"}),
        (
            "system/Patient.read system/Observation.read",
            {"system/Patient.read", "system/Observation.read"},
        ),
        # v2 asked, v2 answered, as before.
        ("system/*.rs", {"system/*.rs"}),
        (
            "system/Patient.rs system/Observation.read",
            {"system/Patient.rs", "system/Observation.read"},
        ),
    ],
)
def test_a_backend_service_asking_v1_scopes_is_answered_in_v1(
    web: FhirTestClient,
    auth_services: Services,
    private_key: rsa.RSAPrivateKey,
    clock: MovableClock,
    asked: str,
    answered: set[str],
) -> None:
    """SMART App Launch 2.0 (scopes-and-launch-context): servers "SHOULD return v1 scopes
    when v1 scopes are requested and granted". A service asking ``system/*.read`` was
    answered ``system/*.rs``, which a client checking its grant against its request (the
    Bulk Data IG's example asks ``system/*.read``) reads as not granted. The grant itself
    is unchanged: the same token exports, and the ledger records the grant as before."""
    response = _token(web, private_key, clock, asked)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body["scope"].split()) == answered
    assert body["token_type"].lower() == "bearer"
    assert body["expires_in"] <= 300
    assert "refresh_token" not in body
    # The token means what it meant: a v1 system/*.read token kicks an export off.
    kicked = web.get(
        "/fhir/Patient/$export",
        headers={
            **bearer(body["access_token"]),
            "prefer": "respond-async",
            "accept": "application/fhir+json",
        },
    )
    assert kicked.status_code == (202 if "*" in asked else 403), kicked.text
    [issued] = events(auth_services.audit_ledger.store, Tag.AUTH_TOKEN_ISSUED)
    assert issued.client_id == SERVICE
    # The ledger keeps the grant in its one (v2) spelling, whatever the request's.
    assert all(".read" not in item for item in issued.detail["scope"].split())


@pytest.mark.usefixtures("service")
def test_the_worked_examples_scope_naming_a_type_this_server_lacks_is_granted_the_rest(
    web: FhirTestClient,
    auth_services: Services,
    private_key: rsa.RSAPrivateKey,
    clock: MovableClock,
) -> None:
    """Backend Services' worked example asks ``system/*.read
    system/CommunicationRequest.write``. CareVault holds no CommunicationRequest, and
    the whole request was refused (``invalid_scope``, "no resource type
    'CommunicationRequest'"), while a scope of a type it holds but the client is not
    registered for was left out and the rest granted. A scope of a type the server does
    not hold grants nothing either way: it is left out, the response's ``scope`` says
    what was granted (RFC 6749 3.3, SMART: "this can be different from the scopes
    requested"), and the ledger names what was not."""
    response = _token(web, private_key, clock, "system/*.read system/CommunicationRequest.write")
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "system/*.read"
    [issued] = events(auth_services.audit_ledger.store, Tag.AUTH_TOKEN_ISSUED)
    assert issued.detail["not_granted"] == ["system/CommunicationRequest.write"]


@pytest.mark.usefixtures("service")
@pytest.mark.parametrize(
    "scope",
    [
        # Nothing the server holds: nothing to grant.
        "system/CommunicationRequest.write",
        # A granular scope still asks for less than its type, and is still refused
        # rather than widened to the whole type.
        "system/Observation.rs?category=laboratory",
        # Not a SMART scope at all.
        "system/observation.read",
    ],
)
def test_scopes_that_grant_nothing_here_are_still_refused(
    web: FhirTestClient, private_key: rsa.RSAPrivateKey, clock: MovableClock, scope: str
) -> None:
    response = _token(web, private_key, clock, scope)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
