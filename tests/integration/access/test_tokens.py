"""Access tokens: only this server's, unexpired, for a live session. Anything else is a 401
that says nothing more, with the reason in the audit ledger; refresh tokens rotate."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from carevault.access.tokens import TokenSigner
from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.keys.files import ed25519_key
from carevault.ledger.events import Outcome, Tag
from tests.integration.access.audit_log import events, refused
from tests.integration.access.browser import assert_refused_within, bearer
from tests.integration.access.conftest import APP, NewStaff
from tests.support.client import FhirTestClient

CHALLENGE = 'Bearer realm="carevault", error="invalid_token"'
NO_TOKEN = 'Bearer realm="carevault"'
OFFLINE = "offline_access user/*.cruds"


def _grant(web: FhirTestClient, form: dict[str, str]) -> dict[str, Any]:
    response = web.post("/auth/token", data=form)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _add_other_app(services: Services) -> None:
    """A second public app, registered for refresh tokens like the clinic app."""
    services.clients.add(
        "other-app",
        "Other",
        confidential=False,
        scopes=OFFLINE,
        redirect_uris=["https://o.example/"],
    )


def _refresh(web: FhirTestClient, refresh_token: str, client_id: str = APP) -> Any:
    return web.post(
        "/auth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": client_id,
        },
    )


def _patients(web: FhirTestClient, token: str) -> int:
    status: int = web.get("/fhir/Patient", headers=bearer(token)).status_code
    return status


def _assert_plain_401(response: Any, *, token_sent: bool = True) -> None:
    assert response.status_code == 401
    # RFC 6750 §3.1: no error code to a request that carried no token at all.
    assert response.headers["www-authenticate"] == (CHALLENGE if token_sent else NO_TOKEN)
    (issue,) = response.json()["issue"]
    assert (issue["code"], issue["diagnostics"]) == ("login", "a valid access token is required")


# --- forged and stale tokens ----------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(genuine: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(genuine, options={"verify_signature": False})
    return claims


def _server_key(svc: Services) -> Ed25519PrivateKey:
    return ed25519_key(svc.settings.resolved_token_key_path, create=False)


def _unsigned(genuine: str) -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(_claims(genuine)).encode())}."


def _hmac_with_public_key(svc: Services, genuine: str) -> str:
    """Algorithm confusion: HS256 keyed with the server's public key, which anyone has."""
    public = _server_key(svc).public_key()
    secret = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = ".".join(
        [
            _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()),
            _b64(json.dumps(_claims(genuine)).encode()),
        ]
    )
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _tampered(genuine: str) -> str:
    header, _, signature = genuine.split(".")
    claims = {**_claims(genuine), "scope": "user/*.cruds system/*.cruds"}
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


def _reissued(
    svc: Services,
    genuine: str,
    *,
    key: Ed25519PrivateKey | None = None,
    issuer: str | None = None,
    audience: str | None = None,
    session_id: str | None = None,
    issued: int | None = None,
) -> str:
    """The genuine token's claims signed again with something changed."""
    signer = svc.sessions.signer
    claims = _claims(genuine)
    return TokenSigner(
        key or _server_key(svc), issuer or signer.issuer, audience or signer.audience
    ).issue(
        subject=claims["sub"],
        session_id=session_id or claims["sid"],
        scope=claims["scope"],
        client_id=claims["client_id"],
        now=issued or claims["iat"],
        lifetime=300,
    )


Forge = Callable[[Services, str], str]

FORGERIES: dict[str, tuple[Forge, str]] = {
    "no token": (lambda _svc, _genuine: "", "no bearer token"),
    "garbage": (lambda _svc, _genuine: "not.a.token", "token rejected: DecodeError"),
    "signed by another key": (
        lambda svc, genuine: _reissued(svc, genuine, key=Ed25519PrivateKey.generate()),
        "token signature does not verify",
    ),
    "claims changed after signing": (
        lambda _svc, genuine: _tampered(genuine),
        "token signature does not verify",
    ),
    "alg none": (lambda _svc, genuine: _unsigned(genuine), "token algorithm 'none'"),
    "HS256 keyed with the public key": (_hmac_with_public_key, "token algorithm 'HS256'"),
    "another issuer": (
        lambda svc, genuine: _reissued(svc, genuine, issuer="https://evil.example"),
        "token is from another issuer",
    ),
    "another audience": (
        lambda svc, genuine: _reissued(svc, genuine, audience="https://other.example/fhir"),
        "token is for another audience",
    ),
    "expired": (
        lambda svc, genuine: _reissued(svc, genuine, issued=int(time.time()) - 3600),
        "token expired",
    ),
    "session never opened": (
        lambda svc, genuine: _reissued(svc, genuine, session_id=secrets.token_urlsafe(24)),
        "unknown session",
    ),
}


@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_forged_or_stale_token_is_refused(
    forgery: str, web: FhirTestClient, auth_services: Services, new_staff: NewStaff
) -> None:
    staff = new_staff()
    genuine = _grant(web, staff.grant())["access_token"]
    assert _patients(web, genuine) == 200
    forge, reason = FORGERIES[forgery]

    response = web.get("/fhir/Patient", headers=bearer(forge(auth_services, genuine)))

    _assert_plain_401(response, token_sent=forgery != "no token")
    event = refused(auth_services.audit_ledger.store, Tag.AUTH_TOKEN_REFUSED, reason)
    assert event.detail["path"] == "/fhir/Patient"
    assert event.source_address == "testclient"


def test_a_token_claiming_wider_scopes_than_its_session_gets_only_the_sessions(
    web: FhirTestClient, auth_services: Services, new_staff: NewStaff
) -> None:
    """The scope claim is not trusted over the scopes stored with the session: a token
    with a wider claim (signed with the server's key: an old release's, or a key that
    leaked without the database) reaches only what its session was granted."""
    staff = new_staff()
    narrow = _grant(web, staff.grant("user/Patient.rs"))
    claims = _claims(narrow["access_token"])
    widened = auth_services.sessions.signer.issue(
        subject=claims["sub"],
        session_id=claims["sid"],
        scope="user/*.cruds",
        client_id=claims["client_id"],
        now=int(time.time()),
        lifetime=300,
    )

    read = web.get("/fhir/Patient", headers=bearer(widened))
    create = web.post_json("/fhir/Patient", {"resourceType": "Patient"}, **bearer(widened))
    other = web.get("/fhir/Observation", headers=bearer(widened))

    assert _claims(widened)["scope"] == "user/*.cruds"
    assert narrow["scope"] == "user/Patient.rs"
    assert read.status_code == 200
    assert create.status_code == other.status_code == 403
    store = auth_services.audit_ledger.store
    refused(store, Tag.FHIR_CREATE, "the token's scopes do not allow 'c' on Patient")
    refused(store, Tag.FHIR_SEARCH, "the token's scopes do not allow 's' on Observation")


# --- revocation, suspension ------------------------------------------------------------------


@pytest.mark.parametrize("which", ["access_token", "refresh_token"])
def test_a_revoked_token_stops_working_at_once(
    which: str, web: FhirTestClient, auth_services: Services, new_staff: NewStaff
) -> None:
    staff = new_staff()
    tokens = _grant(web, staff.grant(OFFLINE))
    session_id = _claims(tokens["access_token"])["sid"]

    revoked = web.post("/auth/revoke", data={"token": tokens[which], "client_id": APP})
    unknown = web.post("/auth/revoke", data={"token": "never-issued", "client_id": APP})

    assert revoked.status_code == unknown.status_code == 200  # RFC 7009: no hint either way
    _assert_plain_401(web.get("/fhir/Patient", headers=bearer(tokens["access_token"])))
    assert _refresh(web, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    store = auth_services.audit_ledger.store
    (event,) = events(store, Tag.AUTH_SESSION_REVOKED)
    assert (event.session_id, event.client_id, event.outcome) == (session_id, APP, Outcome.SUCCESS)
    event = refused(store, Tag.AUTH_TOKEN_REFUSED, "session revoked (revoked by clinic-app)")
    assert event.session_id == session_id
    assert event.principal == f"staff:{staff.username}"
    refused(store, Tag.AUTH_TOKEN_REFUSED, "refresh_token: refresh token expired or session ended")


def test_a_client_cannot_revoke_another_clients_refresh_token(
    web: FhirTestClient, auth_services: Services, new_staff: NewStaff
) -> None:
    """RFC 7009 §2.1: the token must have been issued to the client asking."""
    _add_other_app(auth_services)
    staff = new_staff()
    tokens = _grant(web, staff.grant(OFFLINE))

    response = web.post(
        "/auth/revoke", data={"token": tokens["refresh_token"], "client_id": "other-app"}
    )

    assert response.status_code == 200  # as for any token it does not know: no hint
    assert _patients(web, tokens["access_token"]) == 200
    assert _refresh(web, tokens["refresh_token"]).status_code == 200
    assert events(auth_services.audit_ledger.store, Tag.AUTH_SESSION_REVOKED) == []


def test_suspending_an_account_refuses_its_tokens_within_a_second(
    web: FhirTestClient, auth_services: Services, new_staff: NewStaff
) -> None:
    staff = new_staff(Role.FRONT_DESK)
    tokens = _grant(web, staff.grant(OFFLINE))
    assert _patients(web, tokens["access_token"]) == 200

    _, ended = auth_services.admin.suspend("admin:test", staff.username, reason="badge lost")

    assert ended == 1
    assert_refused_within(web, tokens["access_token"])
    assert _refresh(web, tokens["refresh_token"]).status_code == 400
    store = auth_services.audit_ledger.store
    # The refused token's entry gives fixed words; what was typed (it may name a
    # patient) is sealed in the suspension's own entry (stop 55).
    refused(store, Tag.AUTH_TOKEN_REFUSED, "session revoked (account suspended)")
    (suspended,) = events(store, Tag.ADMIN_STAFF_SUSPENDED)
    assert suspended.reason == staff.account_id
    assert set(suspended.detail) == {"sessions_ended", "reason_sealed"}
    assert suspended.detail["sessions_ended"] == 1
    assert "badge" not in json.dumps(suspended.detail)
    assert auth_services.admin.reason_of(suspended) == "badge lost"


def test_a_suspension_another_process_wrote_takes_effect_within_a_second(
    web: FhirTestClient, auth_services: Services, new_staff: NewStaff
) -> None:
    """Only the account row changes, as when another server process suspends: the
    session state this process caches goes stale for at most ``check_seconds``."""
    staff = new_staff()
    token = _grant(web, staff.grant())["access_token"]
    assert _patients(web, token) == 200

    auth_services.accounts.set_suspended(staff.username, True)

    assert_refused_within(web, token)
    refused(auth_services.audit_ledger.store, Tag.AUTH_TOKEN_REFUSED, "account suspended")


# --- refresh tokens --------------------------------------------------------------------------


def test_refresh_tokens_rotate_and_a_reused_one_revokes_the_session(
    web: FhirTestClient, auth_services: Services, new_staff: NewStaff
) -> None:
    staff = new_staff()
    first = _grant(web, staff.grant(OFFLINE))
    session_id = _claims(first["access_token"])["sid"]

    rotated = _refresh(web, first["refresh_token"])
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert _claims(second["access_token"])["sid"] == session_id
    assert second["scope"] == first["scope"] == OFFLINE
    assert _patients(web, second["access_token"]) == 200

    reused = _refresh(web, first["refresh_token"])

    assert reused.status_code == 400
    assert reused.json() == {
        "error": "invalid_grant",
        "error_description": "the refresh token is not valid",
    }
    # Whoever held either token is out: the session is revoked.
    _assert_plain_401(web.get("/fhir/Patient", headers=bearer(second["access_token"])))
    assert _refresh(web, second["refresh_token"]).status_code == 400
    store = auth_services.audit_ledger.store
    (signal,) = events(store, Tag.AUTH_REFRESH_REUSED)
    assert (signal.session_id, signal.client_id, signal.outcome) == (
        session_id,
        APP,
        Outcome.DENIED,
    )
    refused(store, Tag.AUTH_TOKEN_REFUSED, "refresh_token: refresh token reused: session revoked")
    refused(store, Tag.AUTH_TOKEN_REFUSED, "session revoked (refresh token reused)")
    (refreshed,) = events(store, Tag.AUTH_TOKEN_REFRESHED)
    assert refreshed.session_id == session_id


def test_a_refresh_token_is_refused_to_another_client_without_ending_the_session(
    web: FhirTestClient, auth_services: Services, new_staff: NewStaff
) -> None:
    _add_other_app(auth_services)
    staff = new_staff()
    tokens = _grant(web, staff.grant(OFFLINE))

    response = _refresh(web, tokens["refresh_token"], client_id="other-app")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    refused(
        auth_services.audit_ledger.store,
        Tag.AUTH_TOKEN_REFUSED,
        "refresh_token: refresh token of another client",
    )
    assert _refresh(web, tokens["refresh_token"]).status_code == 200


# --- sessions ----------------------------------------------------------------------------


def test_staff_see_and_end_their_own_sessions_only(
    web: FhirTestClient, auth_services: Services, new_staff: NewStaff
) -> None:
    nurse, colleague = new_staff(Role.NURSE), new_staff(Role.NURSE)
    on_ward = _grant(web, nurse.grant())["access_token"]
    at_desk = _grant(web, nurse.grant())["access_token"]
    theirs = _grant(web, colleague.grant())["access_token"]

    listed = web.get("/auth/sessions", headers={**bearer(on_ward), "user-agent": "ward-pc"})

    assert listed.status_code == 200
    sessions = {item["id"]: item for item in listed.json()["sessions"]}
    assert set(sessions) == {_claims(on_ward)["sid"], _claims(at_desk)["sid"]}
    assert sessions[_claims(on_ward)["sid"]]["current"] is True
    assert sessions[_claims(at_desk)["sid"]]["current"] is False
    assert all(item["client_id"] == APP for item in sessions.values())
    assert all(item["source_address"] == "testclient" for item in sessions.values())

    other = web.delete(f"/auth/sessions/{_claims(theirs)['sid']}", headers=bearer(on_ward))
    mine = web.delete(f"/auth/sessions/{_claims(at_desk)['sid']}", headers=bearer(on_ward))

    assert other.status_code == 404
    assert mine.status_code == 204
    assert _patients(web, theirs) == _patients(web, on_ward) == 200
    _assert_plain_401(web.get("/fhir/Patient", headers=bearer(at_desk)))
    store = auth_services.audit_ledger.store
    (ended,) = events(store, Tag.AUTH_SESSION_REVOKED)
    assert ended.session_id == _claims(at_desk)["sid"]
    assert ended.principal == f"staff-account:{nurse.account_id}"
    assert ended.reason == "ended by its owner"
    refused(store, Tag.AUTH_TOKEN_REFUSED, "session revoked (ended by its owner)")
    _assert_plain_401(web.get("/auth/sessions"), token_sent=False)
