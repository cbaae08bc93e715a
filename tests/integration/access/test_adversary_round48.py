"""Adversary round 48, as an OAuth client library (or an attacker holding one client's
credentials) talks to the token and revocation endpoints: RFC 6749's rules on how a
request is made, and its error responses."""

from __future__ import annotations

import gzip

import pytest
from httpx import Response

from carevault.bootstrap import Services
from carevault.ledger.events import Tag
from tests.integration.access.audit_log import refused
from tests.integration.access.browser import basic
from tests.integration.access.conftest import CLINIC
from tests.support.client import FhirTestClient

pytestmark = pytest.mark.postgres

FORM = {"content-type": "application/x-www-form-urlencoded"}
SCOPE = "system/Patient.rs"


def _service(services: Services, client_id: str) -> str:
    _, secret = services.admin.add_client(
        "admin:test",
        client_id,
        "Feed",
        confidential=True,
        scopes=SCOPE,
        clinic_ids=[CLINIC],
    )
    assert secret
    return secret


def _oauth_error(response: Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == error


def test_a_request_naming_two_clients_is_refused_not_granted_to_one_of_them(
    auth_services: Services, web: FhirTestClient
) -> None:
    """HTTP Basic as one client, ``client_id`` and ``client_secret`` of another in the
    form: a token was issued to the Basic one, the form silently ignored (RFC 6749 2.3:
    a client uses one authentication method per request)."""
    first, second = _service(auth_services, "feed-one"), _service(auth_services, "feed-two")
    both = web.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "scope": SCOPE,
            "client_id": "feed-two",
            "client_secret": second,
        },
        headers=basic("feed-one", first),
    )
    _oauth_error(both, 400, "invalid_request")
    other_id = web.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "scope": SCOPE, "client_id": "feed-two"},
        headers=basic("feed-one", first),
    )
    _oauth_error(other_id, 400, "invalid_request")
    store = auth_services.audit_ledger.store
    assert refused(store, Tag.AUTH_TOKEN_REFUSED, "a client_secret in the form beside HTTP Basic")
    assert refused(store, Tag.AUTH_TOKEN_REFUSED, "client_id in the form names another client")
    # Its own id beside HTTP Basic is one client, one method: as before.
    own_id = web.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "scope": SCOPE, "client_id": "feed-one"},
        headers=basic("feed-one", first),
    )
    assert own_id.status_code == 200, own_id.text


def test_a_parameter_given_twice_is_refused_not_read_as_its_last(
    auth_services: Services, web: FhirTestClient
) -> None:
    """RFC 6749 3.1, 3.2: parameters are sent at most once; the last of two was taken."""
    secret = _service(auth_services, "feed-dup")
    twice = web.post(
        "/auth/token",
        content=f"grant_type=client_credentials&scope=system/Patient.r&scope={SCOPE}",
        headers={**FORM, **basic("feed-dup", secret)},
    )
    _oauth_error(twice, 400, "invalid_request")
    assert "scope" in twice.json()["error_description"]
    revoke_twice = web.post(
        "/auth/revoke",
        content="token=a&token=b",
        headers={**FORM, **basic("feed-dup", secret)},
    )
    _oauth_error(revoke_twice, 400, "invalid_request")


def test_a_body_refused_for_its_size_or_coding_gets_an_oauth_error(
    auth_services: Services, web: FhirTestClient
) -> None:
    """The token endpoint answered these with a FHIR OperationOutcome, which an OAuth
    client reads as no error at all (RFC 6749 5.2: a JSON object with ``error``)."""
    secret = _service(auth_services, "feed-big")
    huge = web.post(
        "/auth/token",
        content="grant_type=client_credentials&pad=" + "a" * 70_000,
        headers={**FORM, **basic("feed-big", secret)},
    )
    _oauth_error(huge, 400, "invalid_request")
    compressed = web.post(
        "/auth/token",
        content=gzip.compress(f"grant_type=client_credentials&scope={SCOPE}".encode()),
        headers={**FORM, **basic("feed-big", secret), "content-encoding": "gzip"},
    )
    _oauth_error(compressed, 400, "invalid_request")
