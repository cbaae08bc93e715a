"""Integration apps (confidential clients): the client-credentials grant, their secret,
their scopes, and what revoking one does."""

from __future__ import annotations

from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.ledger.events import Tag
from tests.integration.access.audit_log import events, refused
from tests.integration.access.browser import assert_refused_within, basic, bearer
from tests.integration.access.conftest import APP, CLINIC, NewStaff
from tests.support.client import FhirTestClient

LAB_FEED = "lab-feed"


@pytest.fixture
def lab_secret(auth_services: Services) -> str:
    _, secret = auth_services.admin.add_client(
        "admin:test",
        LAB_FEED,
        "Laboratory feed",
        confidential=True,
        scopes="system/Observation.cruds system/Patient.rs",
        clinic_ids=[CLINIC],
    )
    assert secret
    return secret


def _credentials(web: FhirTestClient, scope: str, **headers: str) -> Any:
    return web.post(
        "/auth/token", data={"grant_type": "client_credentials", "scope": scope}, headers=headers
    )


def test_an_integration_app_gets_a_token_for_its_registered_scopes(
    web: FhirTestClient, auth_services: Services, lab_secret: str
) -> None:
    response = _credentials(web, "system/*.cruds", **basic(LAB_FEED, lab_secret))
    posted = web.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "scope": "system/Observation.rs",
            "client_id": LAB_FEED,
            "client_secret": lab_secret,
        },
    )

    assert response.status_code == posted.status_code == 200
    body = response.json()
    assert body["scope"] == "system/Observation.cruds system/Patient.rs"
    assert "refresh_token" not in body
    token = bearer(body["access_token"])
    assert web.get("/fhir/Observation", headers=token).status_code == 200
    assert web.post_json("/fhir/Patient", {"resourceType": "Patient"}, **token).status_code == 403
    refused(
        auth_services.audit_ledger.store,
        Tag.FHIR_CREATE,
        "the token's scopes do not allow 'c' on Patient",
    )
    assert posted.json()["scope"] == "system/Observation.rs"
    assert len(events(auth_services.audit_ledger.store, Tag.AUTH_TOKEN_ISSUED)) == 2


CLIENT_FAILURES: dict[str, tuple[str, str]] = {
    "wrong secret": (LAB_FEED, "wrong client secret"),
    "unknown client": ("no-such-feed", "unknown or revoked client"),
}


@pytest.mark.parametrize("failure", CLIENT_FAILURES)
def test_client_authentication_failures_are_401_and_alike(
    failure: str, web: FhirTestClient, auth_services: Services, lab_secret: str
) -> None:
    client_id, reason = CLIENT_FAILURES[failure]

    response = _credentials(web, "system/*.cruds", **basic(client_id, "not-the-secret"))

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Basic realm="carevault"'
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "client authentication failed",
    }
    refused(
        auth_services.audit_ledger.store, Tag.AUTH_TOKEN_REFUSED, f"client_credentials: {reason}"
    )


def test_a_public_app_cannot_use_client_credentials(
    web: FhirTestClient, auth_services: Services
) -> None:
    response = web.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "scope": "user/*.cruds", "client_id": APP},
    )

    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"
    refused(auth_services.audit_ledger.store, Tag.AUTH_TOKEN_REFUSED, "client_credentials:")


@pytest.mark.parametrize(
    ("scope", "reason"),
    [
        ("user/*.cruds", "'user/' scopes are not available to this client"),
        ("system/Encounter.rs", "none of the requested scopes is allowed for this client"),
    ],
)
def test_an_integration_app_cannot_widen_its_scopes(
    scope: str, reason: str, web: FhirTestClient, auth_services: Services, lab_secret: str
) -> None:
    response = _credentials(web, scope, **basic(LAB_FEED, lab_secret))

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    refused(auth_services.audit_ledger.store, Tag.AUTH_TOKEN_REFUSED, reason)


def test_an_integration_app_cannot_sign_staff_in_for_user_scopes(
    web: FhirTestClient, auth_services: Services, lab_secret: str, new_staff: NewStaff
) -> None:
    """Its registration is for system/ scopes: narrowing is per context, so a user/ token
    is nothing it was registered for."""
    staff = new_staff()
    form = {**staff.grant(code="123456"), "client_id": LAB_FEED, "client_secret": lab_secret}

    response = web.post("/auth/token", data=form)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    store = auth_services.audit_ledger.store
    refused(store, Tag.AUTH_TOKEN_REFUSED, "password: none of the requested scopes")
    assert events(store, Tag.AUTH_SIGNED_IN) == events(store, Tag.AUTH_SIGN_IN_FAILED) == []


def test_revoking_an_integration_app_ends_its_tokens_and_its_grant(
    web: FhirTestClient, auth_services: Services, lab_secret: str
) -> None:
    token = _credentials(web, "system/*.cruds", **basic(LAB_FEED, lab_secret)).json()
    assert web.get("/fhir/Observation", headers=bearer(token["access_token"])).status_code == 200

    _, ended = auth_services.admin.revoke_client("admin:test", LAB_FEED)

    assert ended == 1
    assert_refused_within(web, token["access_token"])
    again = _credentials(web, "system/*.cruds", **basic(LAB_FEED, lab_secret))
    assert again.status_code == 401
    store = auth_services.audit_ledger.store
    refused(store, Tag.AUTH_TOKEN_REFUSED, "session revoked (client app revoked)")
    refused(store, Tag.AUTH_TOKEN_REFUSED, "client_credentials: unknown or revoked client")
    (revoked,) = events(store, Tag.ADMIN_CLIENT_REVOKED)
    assert (revoked.reason, revoked.detail) == (LAB_FEED, {"sessions_ended": 1})


def test_basic_credentials_are_form_url_decoded(web: FhirTestClient, lab_secret: str) -> None:
    """RFC 6749 2.3.1: a client form-url-encodes its id and secret before HTTP Basic
    encodes them, so the server decodes both (``%2D`` is ``-``, ``+`` a space)."""
    encoded = "".join(f"%{ord(c):02X}" if c in "-_" else c for c in lab_secret)
    response = _credentials(web, "system/*.cruds", **basic("lab%2Dfeed", encoded))
    assert response.status_code == 200, response.text
    assert response.json()["access_token"]


@pytest.mark.parametrize("credentials", ["lab-feed", "bGFiLWZlZWQ", "!!!!", "bGFiLWZlZWQ6*"])
def test_malformed_basic_credentials_are_refused_as_such(
    web: FhirTestClient, lab_secret: str, credentials: str
) -> None:
    """Not base64, base64 with junk (which a lax decoder drops), or no colon: 401."""
    response = _credentials(web, "system/*.cruds", authorization=f"Basic {credentials}")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
