"""A browser signs a physician in to a clinic app against a real server process: the
authorization-code flow with PKCE over HTTP, then the app's tokens through their life.

The server is ``carevault serve`` on a data directory provisioned with only what the
flow needs (one clinic, one patient, one physician, the demo app's registration), not
the whole synthetic group ``carevault seed`` writes: that takes 15-60 s per backend.
The direct grant stays off, as in production.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from carevault.bootstrap import build_services
from carevault.config import Settings
from carevault.domain.roles import Role
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller
from carevault.ledger.events import Outcome, Tag
from carevault.sim.loader import DEMO_CLIENT_ID, DEMO_CLIENT_SCOPES, DEMO_REDIRECT_URIS
from carevault.vault.writer import Put
from tests.integration.access.audit_log import audit_store, events, reasons, refused
from tests.integration.access.browser import (
    AuthRequest,
    bearer,
    code_from,
    read_login_page,
    submit_login,
)
from tests.support.auth import Login, fresh_code
from tests.support.server import RunningServer, environment, running_server

pytestmark = pytest.mark.e2e

CLINIC = "clinic-central"
SCOPE = "openid fhirUser offline_access user/*.cruds"
APP_AGENT = "clinic-app/1.0"
RECORDS = [
    {"resourceType": "Organization", "id": CLINIC, "name": "Central Clinic"},
    {
        "resourceType": "Patient",
        "id": "pat-1",
        "name": [{"family": "Leung", "given": ["Wing Sze"]}],
        "managingOrganization": {"reference": f"Organization/{CLINIC}"},
    },
]


@pytest.fixture
def served(settings: Settings, tmp_path: Path) -> Iterator[tuple[RunningServer, Login]]:
    """A real server process, and the physician who works at its one clinic."""
    services = build_services(settings, create_keys=True, migrate=True)
    try:
        services.gate.write(
            Caller(principal="system:test", purpose="HOPERAT"),
            [Put(RESOURCE_TYPES[item["resourceType"]], item["id"], item) for item in RECORDS],
        )
        password = "correct horse battery staple"
        # A name of its own: fresh_code() remembers the codes each username has used.
        account, secret = services.accounts.add(
            f"dr.chan.{secrets.token_hex(3)}", "Dr Chan Tai Man", Role.PHYSICIAN, [CLINIC], password
        )
        services.clients.add(
            DEMO_CLIENT_ID,
            "CareVault demo app",
            confidential=False,
            scopes=DEMO_CLIENT_SCOPES,
            redirect_uris=DEMO_REDIRECT_URIS,
        )
    finally:
        services.close()
    env = environment(
        settings.home,
        settings.database_url,
        {"CAREVAULT_ARGON2_MEMORY_KIB": "8192", "CAREVAULT_ARGON2_TIME_COST": "1"},
    )
    with running_server(env, tmp_path) as server:
        yield server, Login(account.username, "physician", secret, password, frozenset({CLINIC}))


def _sign_in(browser: httpx.Client, app: httpx.Client, doctor: Login, fhir: str) -> Any:
    """A browser signs in; the app redeems the code it is sent. The token response."""
    request = AuthRequest(DEMO_CLIENT_ID, fhir, SCOPE, DEMO_REDIRECT_URIS[0])
    answer = submit_login(browser, request, doctor.username, doctor.password, fresh_code(doctor))
    code = code_from(answer, request)
    assert answer.headers["cache-control"] == "no-store"
    token = app.post("/auth/token", data=request.exchange(code))
    assert token.status_code == 200, token.text
    return token.json()


def _refresh(app: httpx.Client, refresh_token: str) -> Any:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return app.post("/auth/token", data={**form, "client_id": DEMO_CLIENT_ID})


def _sid(token: str) -> str:
    session_id: str = jwt.decode(token, options={"verify_signature": False})["sid"]
    return session_id


def test_a_browser_signs_in_with_pkce_and_the_app_refreshes_and_ends_the_session(
    served: tuple[RunningServer, Login], settings: Settings
) -> None:
    live_server, doctor = served
    with (
        httpx.Client(base_url=live_server.url, timeout=30) as browser,
        httpx.Client(
            base_url=live_server.url, timeout=30, headers={"user-agent": APP_AGENT}
        ) as app,
    ):
        config = app.get("/.well-known/smart-configuration").json()
        assert config["authorization_endpoint"] == f"{live_server.url}/auth/authorize"
        assert config["token_endpoint"] == f"{live_server.url}/auth/token"
        assert config["code_challenge_methods_supported"] == ["S256"]

        # A wrong password first: the same page again, with the generic error.
        request = AuthRequest(DEMO_CLIENT_ID, live_server.fhir, SCOPE, DEMO_REDIRECT_URIS[0])
        wrong = submit_login(browser, request, doctor.username, "not the password", "000000")
        assert wrong.status_code == 401
        assert "sign-in failed" in read_login_page(wrong.text).alert

        first = _sign_in(browser, app, doctor, live_server.fhir)
        # No Practitioner for this account: fhirUser is not granted (docs/smart-apps.md).
        assert first["scope"] == "offline_access openid user/*.cruds"
        token = bearer(first["access_token"])
        patients = app.get("/fhir/Patient", params={"_count": "1"}, headers=token)
        assert patients.status_code == 200
        assert patients.json()["resourceType"] == "Bundle"
        assert [entry["resource"]["id"] for entry in patients.json()["entry"]] == ["pat-1"]
        clinics = app.get("/fhir/Organization", headers=token)
        assert clinics.status_code == 200
        assert clinics.json()["total"] == 1
        assert app.get("/fhir/Patient").status_code == 401  # no token, no data

        (session,) = app.get("/auth/sessions", headers=token).json()["sessions"]
        assert session["id"] == _sid(first["access_token"])
        assert session["current"] is True
        assert session["client_id"] == DEMO_CLIENT_ID
        assert (session["source_address"], session["user_agent"]) == ("127.0.0.1", APP_AGENT)

        rotated = _refresh(app, first["refresh_token"])
        assert rotated.status_code == 200
        second = rotated.json()
        assert second["refresh_token"] != first["refresh_token"]
        assert _sid(second["access_token"]) == session["id"]
        assert app.get("/fhir/Patient", headers=bearer(second["access_token"])).status_code == 200

        # Someone replays the first refresh token: refused, and the session is over for all.
        reused = _refresh(app, first["refresh_token"])
        assert reused.status_code == 400
        assert reused.json()["error"] == "invalid_grant"
        assert app.get("/fhir/Patient", headers=bearer(second["access_token"])).status_code == 401
        assert _refresh(app, second["refresh_token"]).status_code == 400

        # Signing in again opens a new session; revoking it ends it.
        again = _sign_in(browser, app, doctor, live_server.fhir)
        token = bearer(again["access_token"])
        listed = app.get("/auth/sessions", headers=token).json()["sessions"]
        assert [item["id"] for item in listed] == [_sid(again["access_token"])]
        revoked = app.post(
            "/auth/revoke", data={"token": again["refresh_token"], "client_id": DEMO_CLIENT_ID}
        )
        assert revoked.status_code == 200
        assert app.get("/fhir/Patient", headers=token).status_code == 401
        assert app.get("/auth/sessions", headers=token).status_code == 401

    with audit_store(settings) as store:
        principal = f"staff:{doctor.username}"
        signed_in = [e for e in events(store, Tag.AUTH_SIGNED_IN) if e.principal == principal]
        assert len(signed_in) == 2
        assert all(event.client_id == DEMO_CLIENT_ID for event in signed_in)
        refused(store, Tag.AUTH_SIGN_IN_FAILED, "wrong password")
        issued = [e for e in events(store, Tag.AUTH_TOKEN_ISSUED) if e.session_id]
        assert {event.session_id for event in issued} >= {session["id"], listed[0]["id"]}
        (refreshed,) = events(store, Tag.AUTH_TOKEN_REFRESHED)
        (reuse,) = events(store, Tag.AUTH_REFRESH_REUSED)
        assert refreshed.session_id == reuse.session_id == session["id"]
        assert reuse.outcome is Outcome.DENIED
        refused(store, Tag.AUTH_TOKEN_REFUSED, "refresh_token: refresh token reused")
        refused(store, Tag.AUTH_TOKEN_REFUSED, "session revoked (refresh token reused)")
        ended_by_app = "session revoked (revoked by demo-app)"
        assert reasons(store, Tag.AUTH_TOKEN_REFUSED).count(ended_by_app) == 2
        (ended,) = events(store, Tag.AUTH_SESSION_REVOKED)
        assert ended.session_id == listed[0]["id"]
        search = [e for e in events(store, Tag.FHIR_SEARCH) if e.principal == principal]
        assert {event.resource_type for event in search} == {"Patient", "Organization"}
