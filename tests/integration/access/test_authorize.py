"""The authorization-code flow with PKCE, in-process: what the login page lets through,
what it refuses and where (an error page, or a redirect to the app), and the code."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from carevault.access import pkce
from carevault.access.oauth import CODE_SECONDS
from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.ledger.events import Outcome, Tag
from tests.integration.access.audit_log import events, refused
from tests.integration.access.browser import (
    REDIRECT_URI,
    AuthRequest,
    bearer,
    code_from,
    error_from,
    read_login_page,
    submit_login,
)
from tests.integration.access.conftest import APP, FHIR_BASE, MovableClock, NewStaff, Staff
from tests.support.client import FhirTestClient

#: The longest ``state`` sent back to an app (docs/smart-apps.md).
MAX_STATE = 1024


def _signed_in_code(web: FhirTestClient, staff: Staff, request: AuthRequest) -> str:
    return code_from(
        submit_login(web, request, staff.username, staff.password, staff.code()), request
    )


def _redeem(web: FhirTestClient, request: AuthRequest, code: str, /, **changes: str) -> Any:
    """Redeem ``code`` as the app would, with ``changes`` to the token request."""
    return web.post("/auth/token", data={**request.exchange(code), **changes})


def test_the_code_flow_gives_the_app_a_token_for_the_signed_in_user(
    web: FhirTestClient, auth_services: Services, new_staff: NewStaff
) -> None:
    staff = new_staff()
    request = AuthRequest(APP, FHIR_BASE)

    page = web.get("/auth/authorize", params=request.params())

    assert page.status_code == 200
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    cookie = page.headers["set-cookie"]
    assert cookie.startswith("cv_csrf=")
    assert all(part in cookie for part in ("HttpOnly", "SameSite=strict", "Path=/auth"))
    assert "Clinic app" in page.text

    code = _signed_in_code(web, staff, request)
    response = _redeem(web, request, code)

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == auth_services.settings.access_token_seconds
    # fhirUser only for a Practitioner: this staff member is none (test_smart_apps.py).
    assert body["scope"] == "offline_access openid user/*.cruds"
    assert body["refresh_token"]
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert (claims["sub"], claims["client_id"]) == (staff.account_id, APP)
    assert claims["exp"] - claims["iat"] == auth_services.settings.access_token_seconds
    assert web.get("/fhir/Patient", headers=bearer(body["access_token"])).status_code == 200
    (listed,) = web.get("/auth/sessions", headers=bearer(body["access_token"])).json()["sessions"]
    assert (listed["id"], listed["current"]) == (claims["sid"], True)
    assert (listed["source_address"], listed["user_agent"]) == ("testclient", "testclient")
    store = auth_services.audit_ledger.store
    (signed_in,) = events(store, Tag.AUTH_SIGNED_IN)
    assert (signed_in.principal, signed_in.client_id) == (f"staff:{staff.username}", APP)
    (issued,) = events(store, Tag.AUTH_TOKEN_ISSUED)
    assert issued.reason == "authorization_code grant"
    assert issued.session_id == claims["sid"]


BAD_EXCHANGES: dict[str, tuple[dict[str, str], str]] = {
    "another verifier": ({"code_verifier": pkce.new_verifier()}, "PKCE verifier does not match"),
    "the challenge sent as verifier (plain)": ({}, "PKCE verifier does not match"),
    "another redirect URI": (
        {"redirect_uri": "http://127.0.0.1:8765/elsewhere"},
        "client or redirect_uri mismatch",
    ),
    "a made-up code": ({"code": "made-up"}, "unknown code"),
}


@pytest.mark.parametrize("bad", BAD_EXCHANGES)
def test_a_code_redeemed_wrongly_is_refused(
    bad: str, web: FhirTestClient, auth_services: Services, new_staff: NewStaff
) -> None:
    staff = new_staff()
    request = AuthRequest(APP, FHIR_BASE)
    code = _signed_in_code(web, staff, request)
    changes, reason = BAD_EXCHANGES[bad]
    if bad.startswith("the challenge"):
        changes = {"code_verifier": pkce.challenge_for(request.verifier)}

    response = _redeem(web, request, code, **changes)

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "the code is not valid",
    }
    refused(
        auth_services.audit_ledger.store, Tag.AUTH_TOKEN_REFUSED, f"authorization_code: {reason}"
    )
    assert events(auth_services.audit_ledger.store, Tag.AUTH_TOKEN_ISSUED) == []


def test_a_code_shown_with_the_wrong_verifier_is_spent(
    web: FhirTestClient, auth_services: Services, new_staff: NewStaff
) -> None:
    """Whoever intercepted the code may keep guessing verifiers; the code dies at the first."""
    staff = new_staff()
    request = AuthRequest(APP, FHIR_BASE)
    code = _signed_in_code(web, staff, request)
    wrong = _redeem(web, request, code, code_verifier=pkce.new_verifier())
    assert wrong.status_code == 400

    right = _redeem(web, request, code)

    assert right.status_code == 400
    assert right.json() == {"error": "invalid_grant", "error_description": "the code is not valid"}
    store = auth_services.audit_ledger.store
    refused(store, Tag.AUTH_TOKEN_REFUSED, "PKCE verifier does not match; code spent")
    refused(store, Tag.AUTH_TOKEN_REFUSED, "authorization_code: code used twice")
    assert events(store, Tag.AUTH_TOKEN_ISSUED) == []


def test_an_expired_code_is_refused(
    web: FhirTestClient, auth_services: Services, new_staff: NewStaff, clock: MovableClock
) -> None:
    staff = new_staff()
    request = AuthRequest(APP, FHIR_BASE)
    code = _signed_in_code(web, staff, request)
    clock.advance(CODE_SECONDS)

    response = _redeem(web, request, code)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    refused(auth_services.audit_ledger.store, Tag.AUTH_TOKEN_REFUSED, "code expired")


def test_a_code_used_twice_is_refused_and_the_session_it_opened_is_revoked(
    web: FhirTestClient, auth_services: Services, new_staff: NewStaff
) -> None:
    staff = new_staff()
    request = AuthRequest(APP, FHIR_BASE)
    code = _signed_in_code(web, staff, request)
    first = _redeem(web, request, code).json()
    assert web.get("/fhir/Patient", headers=bearer(first["access_token"])).status_code == 200

    second = _redeem(web, request, code)

    assert second.status_code == 400
    assert second.json() == {"error": "invalid_grant", "error_description": "the code is not valid"}
    # Per RFC 6749 §4.1.2 the code was probably intercepted: what it opened is ended.
    assert web.get("/fhir/Patient", headers=bearer(first["access_token"])).status_code == 401
    refresh = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    assert web.post("/auth/token", data={**refresh, "client_id": APP}).status_code == 400
    store = auth_services.audit_ledger.store
    refused(store, Tag.AUTH_TOKEN_REFUSED, "authorization_code: code used twice; session revoked")
    refused(store, Tag.AUTH_TOKEN_REFUSED, "session revoked (authorization code replayed)")


UNTRUSTED_REQUESTS: dict[str, tuple[dict[str, str], str]] = {
    "an unregistered redirect URI": (
        {"redirect_uri": "https://evil.example/callback"},
        "redirect_uri is not registered for this client",
    ),
    "a redirect URI that only starts like the registered one": (
        {"redirect_uri": REDIRECT_URI + ".evil.example/"},
        "redirect_uri is not registered for this client",
    ),
    "an unknown client": ({"client_id": "no-such-app"}, "unknown client"),
}


@pytest.mark.parametrize("untrusted", UNTRUSTED_REQUESTS)
def test_a_request_with_an_untrusted_redirect_gets_an_error_page_not_a_redirect(
    untrusted: str, web: FhirTestClient, auth_services: Services
) -> None:
    changes, reason = UNTRUSTED_REQUESTS[untrusted]
    request = AuthRequest(APP, FHIR_BASE)

    page = web.get("/auth/authorize", params=request.params(**changes), follow_redirects=False)

    assert page.status_code == 400
    assert "location" not in page.headers
    assert "set-cookie" not in page.headers  # no login form was offered
    assert reason in page.text
    assert page.headers["x-frame-options"] == "DENY"
    event = refused(
        auth_services.audit_ledger.store, Tag.AUTH_TOKEN_REFUSED, f"authorize: {reason}"
    )
    assert event.source_address == "testclient"


def test_a_login_form_edited_to_send_the_code_elsewhere_is_refused(
    web: FhirTestClient, auth_services: Services, new_staff: NewStaff
) -> None:
    staff = new_staff()
    request = AuthRequest(APP, FHIR_BASE)
    form = read_login_page(web.get("/auth/authorize", params=request.params()).text)
    filled = {
        **form.hidden,
        "redirect_uri": "https://evil.example/callback",
        "username": staff.username,
        "password": staff.password,
        "totp": staff.code(),
    }

    response = web.post(form.action, data=filled, follow_redirects=False)

    assert response.status_code == 400
    assert "location" not in response.headers
    store = auth_services.audit_ledger.store
    refused(store, Tag.AUTH_TOKEN_REFUSED, "authorize: redirect_uri is not registered")
    assert events(store, Tag.AUTH_SIGNED_IN) == []


@pytest.mark.parametrize("cookie", ["missing", "from another form"])
def test_a_login_post_without_its_csrf_cookie_is_refused(
    cookie: str, web: FhirTestClient, auth_services: Services, new_staff: NewStaff
) -> None:
    staff = new_staff()
    request = AuthRequest(APP, FHIR_BASE)
    form = read_login_page(web.get("/auth/authorize", params=request.params()).text)
    web.cookies.clear()
    if cookie == "from another form":
        web.get("/auth/authorize", params=request.params())
    filled = {**form.hidden, "username": staff.username, "password": staff.password}

    response = web.post(form.action, data={**filled, "totp": staff.code()}, follow_redirects=False)

    assert response.status_code == 400
    assert "the sign-in form expired" in response.text
    store = auth_services.audit_ledger.store
    assert events(store, Tag.AUTH_SIGNED_IN) == events(store, Tag.AUTH_SIGN_IN_FAILED) == []


SENT_BACK: dict[str, tuple[dict[str, str], str, str]] = {
    "no PKCE": (
        {"code_challenge": "", "code_challenge_method": ""},
        "invalid_request",
        "PKCE with code_challenge_method=S256 is required",
    ),
    "plain PKCE": (
        {"code_challenge_method": "plain"},
        "invalid_request",
        "PKCE with code_challenge_method=S256 is required",
    ),
    "another server's aud": (
        {"aud": "https://other.example/fhir"},
        "invalid_request",
        "aud must be this FHIR server's base URL",
    ),
    "the implicit flow": (
        {"response_type": "token"},
        "unsupported_response_type",
        "only response_type=code is supported",
    ),
    # RFC 6749 4.1.2.1: a missing parameter is invalid_request, not unsupported.
    "no response_type": (
        {"response_type": ""},
        "invalid_request",
        "response_type is required",
    ),
    "system scopes": (
        {"scope": "system/*.cruds"},
        "invalid_scope",
        "'system/' scopes are not available to this client",
    ),
    "a granular scope": (
        {"scope": "user/Observation.rs?category=laboratory"},
        "invalid_scope",
        "granular scopes (with '?') are not supported",
    ),
}


@pytest.mark.parametrize("bad", SENT_BACK)
def test_a_bad_request_from_a_known_app_is_sent_back_to_it_with_an_error(
    bad: str, web: FhirTestClient, auth_services: Services
) -> None:
    changes, error, reason = SENT_BACK[bad]
    request = AuthRequest(APP, FHIR_BASE)

    response = web.get("/auth/authorize", params=request.params(**changes), follow_redirects=False)

    assert error_from(response, request) == error
    event = refused(auth_services.audit_ledger.store, Tag.AUTH_TOKEN_REFUSED, reason)
    assert (event.client_id, event.outcome) == (APP, Outcome.DENIED)


def test_an_app_gets_only_the_scopes_it_is_registered_for(
    web: FhirTestClient, auth_services: Services, new_staff: NewStaff
) -> None:
    auth_services.clients.add(
        "patient-list",
        "Patient list",
        confidential=False,
        scopes="user/Patient.rs",
        redirect_uris=[REDIRECT_URI],
    )
    staff = new_staff(Role.PHYSICIAN)
    request = AuthRequest(
        "patient-list", FHIR_BASE, scope="offline_access user/Patient.cruds user/Observation.rs"
    )
    page = web.get("/auth/authorize", params=request.params())
    assert "(user/Patient.rs)" in page.text  # what the user is asked to allow: the narrowed set

    body = _redeem(web, request, _signed_in_code(web, staff, request)).json()

    assert body["scope"] == "user/Patient.rs"
    assert "refresh_token" not in body  # offline_access is not registered for the app
    token = bearer(body["access_token"])
    assert web.get("/fhir/Patient", headers=token).status_code == 200
    created = web.post_json("/fhir/Patient", {"resourceType": "Patient"}, **token)
    searched = web.get("/fhir/Observation", headers=token)
    read = web.get("/fhir/Observation/anything", headers=token)
    assert created.status_code == searched.status_code == read.status_code == 403
    store = auth_services.audit_ledger.store
    refused(store, Tag.FHIR_CREATE, "the token's scopes do not allow 'c' on Patient")
    refused(store, Tag.FHIR_SEARCH, "the token's scopes do not allow 's' on Observation")
    refused(store, Tag.FHIR_READ, "the token's scopes do not allow 'r' on Observation")


@pytest.mark.parametrize("scope", ["user/Observation.rs", "patient/Patient.rs"])
def test_asking_only_for_unregistered_scopes_is_sent_back_as_invalid_scope(
    scope: str, web: FhirTestClient, auth_services: Services
) -> None:
    auth_services.clients.add(
        "patient-list",
        "Patient list",
        confidential=False,
        scopes="user/Patient.rs",
        redirect_uris=[REDIRECT_URI],
    )
    request = AuthRequest("patient-list", FHIR_BASE, scope=scope)

    response = web.get("/auth/authorize", params=request.params(), follow_redirects=False)

    assert error_from(response, request) == "invalid_scope"
    store = auth_services.audit_ledger.store
    assert refused(store, Tag.AUTH_TOKEN_REFUSED, "authorize:").client_id == "patient-list"


def test_smart_discovery_is_served_at_the_fhir_base(web: FhirTestClient) -> None:
    """SMART App Launch: apps look for ``[FHIR base]/.well-known/smart-configuration``."""
    response = web.get("/fhir/.well-known/smart-configuration")

    assert response.status_code == 200
    assert response.json() == web.get("/.well-known/smart-configuration").json()
    # What is advertised is done (tests/integration/access/test_smart_apps.py).
    assert "openid" in response.json()["scopes_supported"]
    assert "sso-openid-connect" in response.json()["capabilities"]


def test_a_redirect_uri_registered_before_whole_url_checks_sends_no_code_there(
    web: FhirTestClient, auth_services: Services
) -> None:
    """Review of f85f945: redirect URIs became judged as whole URLs at registration only.
    An app registered before, with ``http://localhost.evil.example/cb`` (which the prefix
    test took for loopback), still had codes sent there in the clear, and that host
    stayed a CORS origin of the FHIR API. A stored URI the registration would refuse is
    refused at use too."""
    import json

    from sqlalchemy import update

    from carevault.access.tables import client_app
    from carevault.config import browser_origin
    from carevault.db import write_transaction

    legacy = "http://localhost.evil.example/cb"
    with write_transaction(auth_services.engine) as connection:
        connection.execute(
            update(client_app)
            .where(client_app.c.client_id == APP)
            .values(redirect_uris=json.dumps([REDIRECT_URI, legacy]), seal=None)
        )
    # Registered before apps were sealed: sealed as it stood at the upgrade (round 70).
    auth_services.clients.seal_unsealed()
    request = AuthRequest(APP, FHIR_BASE)

    page = web.get(
        "/auth/authorize", params=request.params(redirect_uri=legacy), follow_redirects=False
    )

    assert page.status_code == 400
    assert "location" not in page.headers
    assert "http://localhost.evil.example" not in auth_services.clients.browser_origins()
    assert browser_origin(REDIRECT_URI) in auth_services.clients.browser_origins()


def _sent_back_without_state(response: Any) -> dict[str, list[str]]:
    """The query of a redirect back to the app's registered URI that carries an error,
    no code and no ``state``; no sign-in form (nor its cookie) was offered."""
    assert response.status_code == 302, response.text
    assert "set-cookie" not in response.headers
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    query = parse_qs(location.query)
    assert "code" not in query and "state" not in query
    return query


@pytest.mark.parametrize("state", ["missing", "empty"])
def test_a_request_without_state_is_sent_back_as_invalid_request(
    state: str, web: FhirTestClient, auth_services: Services
) -> None:
    """SMART App Launch 2.0: ``state`` is required (the app's defence against a forged
    callback). It was served without one, and its answers carried none (round 69)."""
    params = AuthRequest(APP, FHIR_BASE).params(state="")
    if state == "empty":
        params["state"] = ""

    response = web.get("/auth/authorize", params=params, follow_redirects=False)

    query = _sent_back_without_state(response)
    assert query["error"] == ["invalid_request"]
    (description,) = query["error_description"]
    assert "state is required" in description
    event = refused(
        auth_services.audit_ledger.store, Tag.AUTH_TOKEN_REFUSED, "authorize: state is required"
    )
    assert (event.client_id, event.source_address) == (APP, "testclient")


def test_an_overlong_state_is_refused_and_not_echoed(
    web: FhirTestClient, auth_services: Services
) -> None:
    """A state is echoed into the redirect back to the app: one of 100,000 characters
    made every answer (a code, an error) a URL no browser or proxy takes. Refused, and
    not sent back."""
    request = AuthRequest(APP, FHIR_BASE, state="s" * (MAX_STATE + 1))

    response = web.get("/auth/authorize", params=request.params(), follow_redirects=False)

    query = _sent_back_without_state(response)
    assert query["error"] == ["invalid_request"]
    (description,) = query["error_description"]
    assert f"state is longer than {MAX_STATE} bytes" in description
    assert "not sent back" in description
    assert len(response.headers["location"]) < 300
    event = refused(
        auth_services.audit_ledger.store, Tag.AUTH_TOKEN_REFUSED, "authorize: state is longer"
    )
    assert event.client_id == APP
    assert "s" * 100 not in event.reason


def test_a_state_up_to_the_limit_is_echoed_with_the_code_and_with_an_error(
    web: FhirTestClient, new_staff: NewStaff
) -> None:
    staff = new_staff()
    odd = "a b&c=d/é+%?#"
    state = odd + "x" * (MAX_STATE - len(odd.encode()))
    assert len(state.encode()) == MAX_STATE
    request = AuthRequest(APP, FHIR_BASE, state=state)

    code = _signed_in_code(web, staff, request)  # code_from checks the state came back

    assert code
    sent_back = web.get(
        "/auth/authorize",
        params=request.params(aud="https://other.example/fhir"),
        follow_redirects=False,
    )
    assert error_from(sent_back, request) == "invalid_request"  # with the state, as sent


def test_a_state_is_bounded_in_bytes_not_characters(web: FhirTestClient) -> None:
    """1,024 characters of four bytes each came back as 12 KB of query (review of stop
    64): the bound is on the bytes sent."""
    request = AuthRequest(APP, FHIR_BASE, state="\U0001f600" * (MAX_STATE // 4 + 1))

    response = web.get("/auth/authorize", params=request.params(), follow_redirects=False)

    query = _sent_back_without_state(response)
    assert query["error"] == ["invalid_request"]
    assert len(response.headers["location"]) < 300


@pytest.mark.parametrize("state", ["removed", "emptied", "overlong"])
def test_a_sign_in_posted_without_a_good_state_signs_no_one_in(
    state: str, web: FhirTestClient, auth_services: Services, new_staff: NewStaff
) -> None:
    """The sign-in post is the request checked again: a form whose ``state`` was taken
    out (or emptied, or made overlong) on its way signs no one in and sends no code."""
    staff = new_staff()
    request = AuthRequest(APP, FHIR_BASE)
    form = read_login_page(web.get("/auth/authorize", params=request.params()).text)
    hidden = dict(form.hidden)
    if state == "removed":
        del hidden["state"]
    else:
        hidden["state"] = "" if state == "emptied" else "s" * (MAX_STATE + 1)
    filled = {**hidden, "username": staff.username, "password": staff.password}

    response = web.post(form.action, data={**filled, "totp": staff.code()}, follow_redirects=False)

    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    query = parse_qs(location.query)
    assert query["error"] == ["invalid_request"]
    assert "code" not in query and "state" not in query
    store = auth_services.audit_ledger.store
    refused(store, Tag.AUTH_TOKEN_REFUSED, "authorize: state is")
    assert events(store, Tag.AUTH_SIGNED_IN) == events(store, Tag.AUTH_SIGN_IN_FAILED) == []
