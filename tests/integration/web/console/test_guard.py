"""What every console request passes: a session, the right role, this session's CSRF
token, the security headers; sign-in as strict as the token endpoint's."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from carevault.bootstrap import Services, build_services
from carevault.containment.state import Mode
from carevault.web.app import create_app
from tests.integration.web.console.conftest import Browser
from tests.support.console import MovableClock, Person, csrf_of, ledger_events, sign_in

pytestmark = pytest.mark.postgres

PAGES = [
    "/console/dashboard",
    "/console/containment",
    "/console/containment/start?mode=read-only",
    "/console/staff",
    "/console/staff/doctor1",
    "/console/break-glass",
    "/console/patients",
    "/console/patients/pt-chan",
    "/console/patients/pt-chan/letter.pdf",
    "/console/patients/pt-chan/report.json",
    "/console/account",
    "/console/alerts",
    "/console/incidents",
]
ACTIONS = [
    ("/console/containment/start", {"mode": "read-only", "reason": "x", "totp": "123456"}),
    ("/console/containment/1/release", {"reason": "x", "totp": "123456"}),
    ("/console/staff/doctor1/suspend", {"reason": "x", "totp": "123456"}),
    ("/console/staff/doctor1/authenticator", {"totp": "123456"}),
    ("/console/clients/any/revoke", {"totp": "123456"}),
    ("/console/sessions/any/end", {}),
    ("/console/break-glass/any/review", {"outcome": "justified"}),
    ("/console/patients", {"identifier": "K543210(3)", "purpose": "PATRQT"}),
    ("/console/account/language", {"language": "zh-Hant"}),
    ("/console/account/authenticator", {"totp": "123456"}),
    ("/console/dashboard/verify", {}),
    ("/console/sign-out", {}),
]


def test_without_a_session_every_page_asks_to_sign_in_and_nothing_is_done(
    browser: Browser, console_services: Services, officer: Person
) -> None:
    client = browser()
    for path in PAGES:
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/console/sign-in?why=required")
    before = len(ledger_events(console_services))
    for path, form in ACTIONS:
        response = client.post(path, data={**form, "csrf": "forged"}, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/console/sign-in?why=required"
    htmx = client.post("/console/sessions/any/end", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/console/sign-in")
    assert not console_services.containment.refresh().active
    assert len(ledger_events(console_services)) == before


def test_another_sessions_csrf_token_is_refused_recorded_and_changes_nothing(
    signed_in: Browser, console_services: Services, officer: Person, second_officer: Person
) -> None:
    mine, theirs = signed_in(officer), signed_in(second_officer)
    their_token = csrf_of(theirs.get("/console/containment").text)
    my_token = csrf_of(mine.get("/console/containment").text)
    assert their_token != my_token
    form = {"mode": "read-only", "reason": "forged", "totp": officer.code()}
    for token in (their_token, "", None):
        sent = form if token is None else {**form, "csrf": token}
        response = mine.post("/console/containment/start", data=sent, follow_redirects=False)
        assert response.status_code == 403
        assert "nothing was changed" in response.text
    header = mine.post(
        "/console/containment/start", data=form, headers={"X-CSRF-Token": their_token}
    )
    assert header.status_code == 403
    assert not console_services.containment.refresh().active
    refused = [e for e in ledger_events(console_services) if e["tag"] == "console:request:refused"]
    assert len(refused) == 4 and {e["principal"] for e in refused} == {"staff:officer1"}
    # The same form with this session's token (as a header, as htmx sends it) goes through.
    done = mine.post(
        "/console/containment/start",
        data={**form, "totp": officer.code()},
        headers={"X-CSRF-Token": my_token},
        follow_redirects=False,
    )
    assert done.status_code == 303 and console_services.containment.refresh().read_only


def test_sign_in_sets_a_strict_session_cookie_and_is_recorded(
    browser: Browser, console_services: Services, officer: Person
) -> None:
    client = browser()
    response = sign_in(client, officer)
    assert response.status_code == 303 and response.headers["location"] == "/console/dashboard"
    cookie = next(
        value
        for name, value in response.headers.multi_items()
        if name == "set-cookie" and value.startswith("carevault-console=")
    ).lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert "secure" not in cookie, "plain http on loopback: a Secure cookie would not come back"
    events = ledger_events(console_services)
    signed = [e for e in events if e["tag"] == "auth:session:signed-in"]
    opened = [e for e in events if e["tag"] == "console:session:opened"]
    assert signed[-1]["client_id"] == "carevault-console"
    assert opened[-1]["principal"] == "staff:officer1" and opened[-1]["session_id"]
    live = console_services.sessions.list_for(officer.account_id)
    assert [item.client_id for item in live] == ["carevault-console"]


def test_over_https_the_cookie_is_secure_and_host_bound(
    console_services: Services, clock: MovableClock, officer: Person
) -> None:
    # A deployment served at its public address: only that host is served.
    public = console_services.settings.model_copy(
        update={"public_base_url": "https://console.clinic.example/fhir"}
    )
    deployed = build_services(public, clock=clock)
    try:
        with TestClient(
            create_app(public, deployed), base_url="https://console.clinic.example"
        ) as client:
            response = sign_in(client, officer)
    finally:
        deployed.close()
    assert response.status_code == 303
    cookie = next(
        value
        for name, value in response.headers.multi_items()
        if name == "set-cookie" and value.startswith("__Host-")
    )
    assert cookie.startswith("__Host-carevault-console=")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie


def test_every_console_response_carries_the_security_headers(
    signed_in: Browser, officer: Person
) -> None:
    client = signed_in(officer)
    for path in ("/console/dashboard", "/console/sign-in", "/console/nowhere"):
        headers = client.get(path).headers
        policy = headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert "camera=()" in headers["permissions-policy"]
        assert headers["cross-origin-opener-policy"] == "same-origin"
        assert headers["cache-control"] == "no-store"
    script = client.get("/console/static/htmx-2.0.11.min.js")
    assert (
        script.status_code == 200
        and "unsafe-inline" not in script.headers["content-security-policy"]
    )


def test_sign_in_fails_alike_and_is_throttled_as_the_token_endpoint_is(
    browser: Browser, console_services: Services, officer: Person, clock: MovableClock
) -> None:
    client = browser()
    for _ in range(3):
        failed = sign_in(client, officer, code=officer.wrong_code())
        assert failed.status_code == 401 and "Sign-in failed" in failed.text
    held = sign_in(client, officer)
    assert held.status_code == 401 and "Sign-in failed" in held.text
    clock.advance(61)
    assert sign_in(client, officer).status_code == 303
    events = ledger_events(console_services)
    failures = [e["reason"] for e in events if e["tag"] == "auth:session:sign-in-failed"]
    assert failures.count("wrong or replayed TOTP code") == 3
    assert [e for e in events if e["tag"] == "auth:session:sign-in-throttled"]


def test_the_sign_in_form_needs_its_own_token(browser: Browser, officer: Person) -> None:
    client = browser()
    response = client.post(
        "/console/sign-in",
        data={"username": officer.username, "password": officer.password, "totp": officer.code()},
        follow_redirects=False,
    )
    assert response.status_code == 400 and "expired" in response.text


def test_roles_without_a_use_for_the_console_cannot_sign_in(
    browser: Browser, console_services: Services, physician: Person
) -> None:
    response = sign_in(browser(), physician)
    assert response.status_code == 403 and "only for the privacy officer" in response.text
    refused = [e for e in ledger_events(console_services) if e["tag"] == "console:session:refused"]
    assert refused[-1]["principal"] == "staff:doctor1"
    assert console_services.sessions.list_for(physician.account_id) == []


def test_an_idle_session_ends_and_its_auth_session_is_revoked(
    signed_in: Browser, console_services: Services, officer: Person, clock: MovableClock
) -> None:
    client = signed_in(officer)
    assert client.get("/console/dashboard").status_code == 200
    clock.advance(console_services.settings.console_idle_minutes * 60 - 30)
    assert client.get("/console/dashboard").status_code == 200, "used within the idle time"
    clock.advance(console_services.settings.console_idle_minutes * 60 + 1)
    response = client.get("/console/dashboard", follow_redirects=False)
    assert response.headers["location"].startswith("/console/sign-in?why=idle")
    assert console_services.sessions.list_for(officer.account_id) == []
    ended = [e for e in ledger_events(console_services) if e["tag"] == "console:session:ended"]
    assert ended[-1]["reason"] == "idle timeout"


def test_suspending_an_account_ends_its_console_session(
    signed_in: Browser, console_services: Services, officer: Person, manager: Person
) -> None:
    client = signed_in(manager)
    assert client.get("/console/dashboard").status_code == 200
    console_services.admin.suspend("cli:test", manager.username, reason="test")
    response = client.get("/console/dashboard", follow_redirects=False)
    assert response.status_code == 303


def test_signing_out_ends_the_session_for_good(
    signed_in: Browser, console_services: Services, officer: Person
) -> None:
    client = signed_in(officer)
    token = csrf_of(client.get("/console/account").text)
    secret = client.cookies.get("carevault-console")
    response = client.post("/console/sign-out", data={"csrf": token}, follow_redirects=False)
    assert response.headers["location"] == "/console/sign-in?why=out"
    assert console_services.sessions.list_for(officer.account_id) == []
    # The old cookie, replayed, opens nothing.
    client.cookies.set("carevault-console", secret or "", domain="localhost")
    again = client.get("/console/dashboard", follow_redirects=False)
    assert again.status_code == 303
    assert not console_services.containment.refresh().has(Mode.READ_ONLY)


def test_over_https_the_sign_in_token_cannot_be_planted_from_another_host(
    console_services: Services, clock: MovableClock, officer: Person
) -> None:
    """The sign-in form's token is a double-submit cookie: one set by a sibling host
    (``Domain=.clinic.example``) or over plain http, with a form of the same value, would
    sign the officer's browser in as whoever the planter is (login CSRF). Over https it
    is a ``__Host-`` cookie, which only this host, over https, can set."""
    public = console_services.settings.model_copy(
        update={"public_base_url": "https://console.clinic.example/fhir"}
    )
    deployed = build_services(public, clock=clock)
    try:
        with TestClient(
            create_app(public, deployed), base_url="https://console.clinic.example"
        ) as client:
            page = client.get("/console/sign-in")
            cookie = next(
                value
                for name, value in page.headers.multi_items()
                if name == "set-cookie" and "signin" in value
            )
            assert cookie.startswith("__Host-carevault-console-signin=")
            assert "Secure" in cookie and "Path=/;" in cookie and "Domain" not in cookie
            client.cookies.clear()
            client.cookies.set("carevault-console-signin", "planted")
            planted = client.post(
                "/console/sign-in",
                data={"csrf": "planted", "username": officer.username,
                      "password": officer.password, "totp": officer.code()},
                follow_redirects=False,
            )  # fmt: skip
    finally:
        deployed.close()
    assert planted.status_code == 400 and "expired" in planted.text
