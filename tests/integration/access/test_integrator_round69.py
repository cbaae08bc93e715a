"""A single-page SMART app built on SMART's own client-js (fhirclient 2.6.3) in
Chromium, as the round 69 integrator drove it: what the browser and the library expect
of the sign-in pages and the token endpoint. In-process, on SQLite and PostgreSQL; the
browser itself is in tests/e2e/test_smart_client_js.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.ledger.events import Outcome, Tag
from tests.integration.access.browser import (
    APP_SCOPES,
    REDIRECT_URI,
    AuthRequest,
    bearer,
    code_from,
    error_from,
    read_login_page,
    read_picker_page,
    submit_login,
)
from tests.integration.access.group import TM, Group, build_group
from tests.support.client import FhirTestClient
from tests.support.staff import PASSWORD

pytestmark = pytest.mark.postgres

APP = "js-app"
CONFIDENTIAL = "js-backend"
BASE = "http://testserver"
FHIR_BASE = f"{BASE}/fhir"
APP_ORIGIN = "http://127.0.0.1:8765"
LAUNCH_SCOPE = "launch/patient patient/*.rs openid fhirUser offline_access"


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    services.clients.add(
        APP, "Client-js app", confidential=False, scopes=APP_SCOPES, redirect_uris=[REDIRECT_URI]
    )
    yield from build_group(services, api)


def _form_action(response: Any) -> list[str]:
    """The sources of the page's CSP ``form-action`` directive."""
    policy = response.headers["content-security-policy"]
    (directive,) = [
        part.strip() for part in policy.split(";") if part.strip().startswith("form-action ")
    ]
    return directive.split()[1:]


def _signed_in(group: Group, request: AuthRequest) -> Any:
    return submit_login(
        group.web, request, group.doctor_tm.login.username, PASSWORD, group.doctor_tm.totp()
    )


def _tokens(group: Group, scope: str) -> dict[str, Any]:
    """A user-level sign-in of the Tuen Mun physician through the app: its token response."""
    request = AuthRequest(APP, FHIR_BASE, scope=scope)
    code = code_from(_signed_in(group, request), request)
    response = group.web.post("/auth/token", data=request.exchange(code))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _refresh_alone(web: FhirTestClient, refresh_token: str) -> Any:
    """What client-js 2 sends to refresh for a public app: the refresh token, no client."""
    return web.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token}
    )


# --- The sign-in pages' forms may go on to the app (CSP form-action) --------------------


def test_the_sign_in_page_lets_its_form_go_on_to_the_apps_redirect_uri(group: Group) -> None:
    request = AuthRequest(APP, FHIR_BASE, scope="openid user/*.rs")

    page = group.web.get("/auth/authorize", params=request.params())

    assert page.status_code == 200
    # Chromium applies form-action to the 302 that follows the post, too: the app's
    # origin must be allowed or the browser stops on the sign-in page with the code.
    assert _form_action(page) == ["'self'", APP_ORIGIN]
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert "default-src 'none'" in policy


def test_a_failed_sign_in_and_the_patient_picker_allow_the_app_too(group: Group) -> None:
    request = AuthRequest(APP, FHIR_BASE, scope=LAUNCH_SCOPE)

    failed = submit_login(group.web, request, group.doctor_tm.login.username, "wrong", "000000")
    picker = _signed_in(group, request)

    assert failed.status_code == 401
    assert _form_action(failed) == ["'self'", APP_ORIGIN]
    assert picker.status_code == 200
    read_picker_page(picker.text)
    assert _form_action(picker) == ["'self'", APP_ORIGIN]
    searched = group.web.post(
        "/auth/launch", data={**read_picker_page(picker.text).hidden, "q": "Chan"}
    )
    assert _form_action(searched) == ["'self'", APP_ORIGIN]


def test_only_the_requests_own_redirect_origin_is_allowed(group: Group) -> None:
    """Another app's origin, or a redirect URI that is not registered, opens nothing."""
    group.services.clients.add(
        "other-app",
        "Other",
        confidential=False,
        scopes=APP_SCOPES,
        redirect_uris=["https://other.example.hk/cb"],
    )
    request = AuthRequest(APP, FHIR_BASE, scope="openid user/*.rs")
    unregistered = AuthRequest(
        APP, FHIR_BASE, scope="openid user/*.rs", redirect_uri="https://evil.example/cb"
    )

    page = group.web.get("/auth/authorize", params=request.params())
    refused = group.web.get("/auth/authorize", params=unregistered.params())

    assert "https://other.example.hk" not in page.headers["content-security-policy"]
    assert refused.status_code == 400
    assert _form_action(refused) == ["'self'"]
    assert "evil.example" not in refused.headers["content-security-policy"]


@pytest.mark.parametrize(
    "redirect_uri",
    [REDIRECT_URI + "/", REDIRECT_URI + "?x=1", REDIRECT_URI.upper(), REDIRECT_URI + "?"],
)
def test_a_redirect_uri_that_differs_at_all_is_refused_on_a_page(
    group: Group, redirect_uri: str
) -> None:
    """Held: a trailing slash or a query string is another redirect URI (exact match)."""
    request = AuthRequest(APP, FHIR_BASE, scope="openid user/*.rs", redirect_uri=redirect_uri)

    refused = group.web.get("/auth/authorize", params=request.params(), follow_redirects=False)

    assert refused.status_code == 400
    assert "location" not in refused.headers


# --- A public app refreshes with its refresh token alone (client-js's refresh()) --------


def test_a_public_app_refreshes_with_its_refresh_token_alone(group: Group) -> None:
    first = _tokens(group, "openid fhirUser offline_access user/*.rs")

    refreshed = _refresh_alone(group.web, first["refresh_token"])

    assert refreshed.status_code == 200, refreshed.text
    body = refreshed.json()
    assert body["refresh_token"] != first["refresh_token"]
    assert set(body["scope"].split()) == set(first["scope"].split())
    assert group.web.get("/fhir/Patient", headers=bearer(body["access_token"])).status_code == 200
    # The ledger names the app, known from its token.
    (entry,) = group.events(Tag.AUTH_TOKEN_REFRESHED)
    assert entry.client_id == APP
    # Each refresh token is still used once: the spent one, alone, ends the session.
    reused = _refresh_alone(group.web, first["refresh_token"])
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    assert group.web.get("/fhir/Patient", headers=bearer(body["access_token"])).status_code == 401


def test_a_patient_launch_keeps_its_patient_across_a_refresh_without_client_id(
    group: Group,
) -> None:
    request = AuthRequest(APP, FHIR_BASE, scope=LAUNCH_SCOPE)
    picker = read_picker_page(_signed_in(group, request).text)
    chosen = group.web.post(
        "/auth/launch",
        data={**picker.hidden, "patient": group.tm_patient.id},
        follow_redirects=False,
    )
    first = group.web.post("/auth/token", data=request.exchange(code_from(chosen, request))).json()

    refreshed = _refresh_alone(group.web, first["refresh_token"])

    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["patient"] == group.tm_patient.id


def test_a_refresh_token_alone_that_is_unknown_is_invalid_grant(group: Group) -> None:
    refused = _refresh_alone(group.web, "not-a-refresh-token")

    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    (entry,) = [e for e in group.events(Tag.AUTH_TOKEN_REFUSED) if "refresh_token" in e.reason]
    assert entry.outcome is Outcome.DENIED


def test_a_confidential_apps_refresh_token_alone_is_refused_and_not_spent(
    group: Group, services: Services
) -> None:
    """Only public apps are known by their token: a confidential one still authenticates,
    and a refusal for that spends nothing."""
    _, secret = services.clients.add(
        CONFIDENTIAL, "Server app", confidential=True, scopes="system/*.rs", clinic_ids=[TM]
    )
    assert secret is not None
    # A session with a refresh token, as a confidential app's grant would open it.
    pair = services.sessions.open(
        subject=CONFIDENTIAL,
        account_id=None,
        client_id=CONFIDENTIAL,
        scope="system/*.rs",
        with_refresh=True,
        source_address=None,
        user_agent=None,
    )
    assert pair.refresh_token is not None

    refused = _refresh_alone(group.web, pair.refresh_token)
    with_secret = group.web.post(
        "/auth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": pair.refresh_token,
            "client_id": CONFIDENTIAL,
            "client_secret": secret,
        },
    )

    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    assert with_secret.status_code == 200, with_secret.text


def test_a_revoked_public_apps_refresh_token_alone_is_refused(
    group: Group, services: Services
) -> None:
    first = _tokens(group, "openid offline_access user/*.rs")
    services.clients.revoke(APP)

    refused = _refresh_alone(group.web, first["refresh_token"])

    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"


def test_another_app_cannot_refresh_the_first_apps_token(group: Group, services: Services) -> None:
    """Held: naming itself, a second app is refused the first app's refresh token."""
    services.clients.add(
        "second-app",
        "Second",
        confidential=False,
        scopes=APP_SCOPES,
        redirect_uris=["http://127.0.0.1:8766/callback"],
    )
    first = _tokens(group, "openid offline_access user/*.rs")

    stolen = group.web.post(
        "/auth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "client_id": "second-app",
        },
    )

    assert stolen.status_code == 400
    assert stolen.json()["error"] == "invalid_grant"


# --- The user may decline, and the app is told (RFC 6749 4.1.2.1) ----------------------


def test_declining_on_the_sign_in_page_sends_access_denied_to_the_app(group: Group) -> None:
    request = AuthRequest(APP, FHIR_BASE, scope="openid user/*.rs")
    page = group.web.get("/auth/authorize", params=request.params())
    form = read_login_page(page.text)

    declined = group.web.post(
        form.action, data={**form.hidden, "cancel": "1"}, follow_redirects=False
    )

    assert error_from(declined, request) == "access_denied"
    assert declined.headers["cache-control"] == "no-store"
    # Nothing was signed in: no sign-in, failed or not, is recorded.
    assert not group.events(Tag.AUTH_SIGNED_IN)
    assert not group.events(Tag.AUTH_SIGN_IN_FAILED)


def test_a_decline_without_the_forms_csrf_token_is_refused_on_a_page(group: Group) -> None:
    request = AuthRequest(APP, FHIR_BASE, scope="openid user/*.rs")

    forged = group.web.post(
        "/auth/authorize", data={**request.params(), "cancel": "1"}, follow_redirects=False
    )

    assert forged.status_code == 400
    assert "location" not in forged.headers


def test_declining_at_the_picker_spends_the_waiting_code(group: Group) -> None:
    request = AuthRequest(APP, FHIR_BASE, scope=LAUNCH_SCOPE)
    picker = read_picker_page(_signed_in(group, request).text)

    declined = group.web.post(
        "/auth/launch", data={**picker.hidden, "cancel": "1"}, follow_redirects=False
    )

    assert error_from(declined, request) == "access_denied"
    # The waiting code is spent: no patient can be chosen with it, nor can it be redeemed.
    late = group.web.post(
        "/auth/launch",
        data={**picker.hidden, "patient": group.tm_patient.id},
        follow_redirects=False,
    )
    assert error_from(late, request) == "access_denied"
    redeemed = group.web.post("/auth/token", data=request.exchange(picker.hidden["ticket"]))
    assert redeemed.json()["error"] == "invalid_grant"
    assert not group.events(Tag.AUTH_PATIENT_CHOSEN)


def test_patient_scopes_without_the_launch_say_what_is_missing(group: Group) -> None:
    request = AuthRequest(APP, FHIR_BASE, scope="openid patient/*.rs")

    refused = group.web.get("/auth/authorize", params=request.params(), follow_redirects=False)

    assert error_from(refused, request) == "invalid_scope"
    description = refused.headers["location"]
    assert "launch%2Fpatient" in description or "launch/patient" in description


def test_another_app_cannot_redeem_the_first_apps_code_nor_spend_it(
    group: Group, services: Services
) -> None:
    """Held: a second app presenting the first app's code (with the first app's verifier,
    even) is refused, and the first app still redeems it."""
    services.clients.add(
        "second-app",
        "Second",
        confidential=False,
        scopes=APP_SCOPES,
        redirect_uris=["http://127.0.0.1:8766/callback"],
    )
    request = AuthRequest(APP, FHIR_BASE, scope="openid user/*.rs")
    code = code_from(_signed_in(group, request), request)

    stolen = group.web.post(
        "/auth/token",
        data={
            **request.exchange(code),
            "client_id": "second-app",
            "redirect_uri": "http://127.0.0.1:8766/callback",
        },
    )
    redeemed = group.web.post("/auth/token", data=request.exchange(code))

    assert stolen.status_code == 400
    assert stolen.json()["error"] == "invalid_grant"
    assert redeemed.status_code == 200, redeemed.text
