"""The door, as attackers knock on it: a Host header that would rewrite the server's
links, a flood from one address or one account, and anonymous requests by the thousand.

Before: the Host header rewrote the SMART endpoints and ``fullUrl``s; nothing limited
the rate of requests; every refused anonymous request wrote its own ledger entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from carevault.bootstrap import Services, build_services
from carevault.domain.roles import Role
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller
from carevault.ledger.events import Tag
from carevault.vault.writer import Put
from carevault.web.app import create_app
from tests.conftest import make_settings
from tests.integration.access.audit_log import events
from tests.integration.access.browser import bearer
from tests.integration.access.conftest import MovableClock
from tests.support.client import FhirTestClient
from tests.support.staff import make_staff

PUBLIC = "https://ehr.example.hk"
ATTACKER = "203.0.113.66"
NEIGHBOUR = "198.51.100.7"

Build = Callable[..., Services]


@pytest.fixture
def build(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, clock: MovableClock
) -> Iterator[Build]:
    """Services with the given settings on this test's backend (one set per test)."""
    built: list[Services] = []

    def make(**overrides: Any) -> Services:
        url = request.getfixturevalue("pg_schema") if backend == "postgres" else None
        settings = make_settings(tmp_path / "home", url, **overrides)
        services = build_services(settings, create_keys=True, migrate=True, clock=clock)
        built.append(services)
        return services

    yield make
    for services in built:
        services.close()


def _client(
    services: Services, address: str = ATTACKER, base: str = "http://127.0.0.1:8000"
) -> Any:
    return FhirTestClient(
        create_app(services.settings, services), base_url=base, client=(address, 50000)
    )


# --- the Host header -------------------------------------------------------------------------


def test_a_forged_host_is_refused_and_cannot_rewrite_the_smart_endpoints(build: Build) -> None:
    services = build()
    client = _client(services)

    forged = client.get("/.well-known/smart-configuration", headers={"host": "evil.example"})
    loopback = client.get("/.well-known/smart-configuration")
    probe = client.get("/healthz", headers={"host": "10.0.0.8:8000"})

    assert forged.status_code == 400
    assert forged.json()["issue"][0]["diagnostics"] == "refused: unknown host"
    assert "evil.example" not in forged.text
    assert loopback.status_code == 200
    assert loopback.json()["token_endpoint"] == "http://127.0.0.1:8000/auth/token"
    assert probe.status_code == 200  # load balancers probe by address
    (event,) = events(services.audit_ledger.store, Tag.AUTH_HOST_REFUSED)
    assert (event.source_address, event.detail["path"]) == (
        ATTACKER,
        "/.well-known/smart-configuration",
    )


def test_with_a_public_url_every_link_comes_from_it_and_only_its_host_is_served(
    build: Build,
) -> None:
    services = build(public_base_url=f"{PUBLIC}/fhir")
    officer = make_staff(services, Role.PRIVACY_OFFICER, ["clinic-a"])
    services.gate.write(
        Caller(principal="system:test", purpose="HOPERAT"),
        [Put(RESOURCE_TYPES["Patient"], "pat-1", {"resourceType": "Patient", "id": "pat-1"})],
    )
    client = _client(services, base=PUBLIC)

    config = client.get("/.well-known/smart-configuration")
    found = client.get("/fhir/Patient", headers=officer.headers)
    on_loopback = _client(services).get("/fhir/Patient", headers=officer.headers)
    forged = client.get("/fhir/Patient", headers={**officer.headers, "host": "evil.example"})

    assert config.status_code == 200
    assert config.json()["authorization_endpoint"] == f"{PUBLIC}/auth/authorize"
    assert found.status_code == 200
    assert found.json()["entry"][0]["fullUrl"] == f"{PUBLIC}/fhir/Patient/pat-1"
    assert found.json()["link"][0]["url"].startswith(f"{PUBLIC}/fhir/Patient?")
    assert on_loopback.status_code == forged.status_code == 400
    # Refused at the door: the data was never looked at.
    assert len(events(services.audit_ledger.store, Tag.FHIR_SEARCH)) == 1


# --- rate limits -----------------------------------------------------------------------------


def test_a_flood_from_one_address_gets_429_with_retry_after_and_the_neighbour_does_not(
    build: Build, clock: MovableClock
) -> None:
    services = build(rate_limit_source_per_second=0.01, rate_limit_source_burst=5)
    attacker, neighbour = _client(services), _client(services, NEIGHBOUR)
    # Refusals are recorded once per address and minute: on the wall clock the flood could
    # straddle a minute's end and be recorded twice (seen once in a full run).
    clock.freeze()

    answers = [attacker.get("/fhir/metadata").status_code for _ in range(8)]
    limited = attacker.get("/fhir/metadata")

    assert answers == [200] * 5 + [429] * 3
    assert limited.status_code == 429
    # A token every 100 s: what is left of the wait, in whole seconds. The bucket runs on
    # the monotonic clock, not the test's: the nine requests can take a few seconds on a
    # busy machine (98 seen in a full run).
    assert 90 <= int(limited.headers["retry-after"]) <= 100
    assert limited.json()["issue"][0]["code"] == "throttled"
    assert neighbour.get("/fhir/metadata").status_code == 200
    (first,) = events(services.audit_ledger.store, Tag.AUTH_RATE_LIMITED)
    assert (first.source_address, first.detail["count"]) == (ATTACKER, 1)


def test_sign_in_requests_from_one_address_have_their_own_tighter_limit(build: Build) -> None:
    services = build(rate_limit_sign_in_per_second=0.01, rate_limit_sign_in_burst=3)
    attacker = _client(services)
    form = {"grant_type": "password", "username": "x", "password": "y", "totp": "123456"}

    answers = [attacker.post("/auth/token", data=form).status_code for _ in range(5)]
    reading = attacker.get("/fhir/metadata")

    assert answers == [400] * 3 + [429] * 2
    assert reading.status_code == 200


def test_a_flood_by_one_account_gets_429_from_every_address(build: Build) -> None:
    services = build(rate_limit_account_per_second=0.01, rate_limit_account_burst=3)
    nurse = make_staff(services, Role.NURSE, ["clinic-a"])
    office, home = _client(services, NEIGHBOUR), _client(services, ATTACKER)

    answers = [office.get("/fhir/Patient", headers=nurse.headers).status_code for _ in range(3)]
    from_home = home.get("/fhir/Patient", headers=nurse.headers)

    assert answers == [200] * 3
    assert from_home.status_code == 429
    assert from_home.headers["retry-after"] in {"99", "100"}
    (event,) = events(services.audit_ledger.store, Tag.AUTH_RATE_LIMITED)
    assert event.principal == f"staff:{nurse.login.username}"
    assert event.reason == "too many requests by this account"


# --- anonymous refusals ----------------------------------------------------------------------


def test_refused_anonymous_requests_are_counted_per_source_and_minute(
    build: Build, clock: MovableClock
) -> None:
    clock.freeze()  # all in one minute, however slow the machine
    services = build()
    attacker, neighbour = _client(services), _client(services, NEIGHBOUR)
    store = services.audit_ledger.store

    assert attacker.get("/fhir/Patient").status_code == 401
    (first,) = events(store, Tag.AUTH_TOKEN_REFUSED)  # recorded at once
    for _ in range(59):
        attacker.get("/fhir/Patient", headers=bearer("not.a.token"))
    for _ in range(3):
        neighbour.get("/fhir/Condition")
    assert len(events(store, Tag.AUTH_TOKEN_REFUSED)) == 2
    clock.advance(60)
    # The next minute's first refusal is recorded at once, and the last minute's counts
    # with it (a server process also flushes them every few seconds).
    attacker.get("/fhir/Patient")

    entries = events(store, Tag.AUTH_TOKEN_REFUSED)
    assert [(e.source_address, e.detail["count"]) for e in entries] == [
        (ATTACKER, 1),
        (NEIGHBOUR, 1),
        (ATTACKER, 1),
        (ATTACKER, 60),
        (NEIGHBOUR, 3),
    ]
    assert first.reason == "no bearer token"
    assert entries[3].detail["summary"] is True
    assert entries[3].detail["minute"] == first.detail["minute"] != entries[2].detail["minute"]
    assert services.refusals.flush(everything=True) == 0  # nothing more to say
    assert services.audit_ledger.verify().ok


# --- cookies behind a TLS-terminating proxy --------------------------------------------------


def _csrf_cookie_parts(services: Services, base: str, aud: str) -> list[str]:
    """The attributes of the CSRF cookie the sign-in form sets, asked at ``base`` by an
    app for the FHIR server ``aud``."""
    from tests.integration.access.browser import APP_SCOPES, REDIRECT_URI, AuthRequest

    services.clients.add(
        "clinic-app", "Clinic app", confidential=False, scopes=APP_SCOPES,
        redirect_uris=[REDIRECT_URI],
    )  # fmt: skip
    params = AuthRequest("clinic-app", aud).params()
    page = _client(services, base=base).get("/auth/authorize", params=params)
    assert page.status_code == 200, page.text
    cookie: str = page.headers["set-cookie"]
    assert cookie.startswith("cv_csrf="), cookie
    return cookie.lower().split("; ")


def test_the_sign_in_csrf_cookie_is_secure_behind_an_https_public_url(build: Build) -> None:
    """A proxy ends TLS and forwards plain http: the request the app sees is http, yet the
    browser is on https (the configured public URL), and the sign-in form's CSRF cookie
    must not travel in the clear. Secure as the console's cookie decides it
    (``secure_cookie``): the public URL is https, or the request was."""
    services = build(public_base_url=f"{PUBLIC}/fhir")
    proxied = PUBLIC.replace("https://", "http://")
    assert "secure" in _csrf_cookie_parts(services, proxied, f"{PUBLIC}/fhir")


def test_the_sign_in_csrf_cookie_of_a_plain_http_loopback_demo_is_not_secure(
    build: Build,
) -> None:
    """No public URL, plain http on loopback (the demo): a Secure cookie would never come
    back, and the sign-in could not be posted."""
    loopback = "http://127.0.0.1:8000"
    assert "secure" not in _csrf_cookie_parts(build(), loopback, f"{loopback}/fhir")
