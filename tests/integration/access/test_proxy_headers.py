"""``carevault serve`` believes X-Forwarded-For only from the proxies it is configured with.

Before: uvicorn's default believed any client on 127.0.0.1, so a process on the same
host could set ``X-Forwarded-For: 203.0.113.66`` and that address was what the ledger,
the sessions and the blocked-address check saw.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from carevault.bootstrap import build_services
from carevault.config import Settings
from carevault.domain.roles import Role
from carevault.ledger.events import Tag
from carevault.sim.loader import DEMO_CLIENT_ID, DEMO_CLIENT_SCOPES, DEMO_REDIRECT_URIS
from tests.integration.access.audit_log import audit_store, events
from tests.integration.access.browser import bearer
from tests.support.auth import Login, token_for
from tests.support.server import RunningServer, environment, running_server

pytestmark = pytest.mark.e2e

PROXY = "127.0.0.2"
SPOOFED = "203.0.113.66"
FORWARDED = "198.51.100.23"


@pytest.fixture
def served(settings: Settings, tmp_path: Path) -> Iterator[tuple[RunningServer, Login]]:
    """A server whose one trusted proxy is 127.0.0.2, and a front-desk login."""
    services = build_services(settings, create_keys=True, migrate=True)
    try:
        password = "correct horse battery staple"
        account, secret = services.accounts.add(
            f"desk.{secrets.token_hex(3)}", "Front desk", Role.FRONT_DESK, ["clinic-a"], password
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
        {
            "CAREVAULT_TRUSTED_PROXIES": PROXY,
            "CAREVAULT_DIRECT_GRANT": "true",
            "CAREVAULT_ARGON2_MEMORY_KIB": "8192",
            "CAREVAULT_ARGON2_TIME_COST": "1",
        },
    )
    with running_server(env, tmp_path) as server:
        yield server, Login(account.username, "front_desk", secret, password, frozenset())


def _session_address(client: httpx.Client, login: Login) -> str:
    token = token_for(str(client.base_url).rstrip("/"), login, client=client)
    (session,) = [
        item
        for item in client.get("/auth/sessions", headers=bearer(token)).json()["sessions"]
        if item["current"]
    ]
    address: str = session["source_address"]
    return address


def test_forwarded_addresses_are_believed_only_from_the_configured_proxy(
    served: tuple[RunningServer, Login], settings: Settings
) -> None:
    server, login = served
    spoofing = {"x-forwarded-for": SPOOFED, "x-forwarded-proto": "https"}
    with (
        httpx.Client(base_url=server.url, headers=spoofing, timeout=30) as neighbour,
        httpx.Client(
            base_url=server.url,
            headers={"x-forwarded-for": FORWARDED},
            transport=httpx.HTTPTransport(local_address=PROXY),
            timeout=30,
        ) as proxy,
    ):
        # A process on the same host (127.0.0.1, which uvicorn would trust by default).
        assert _session_address(neighbour, login) == "127.0.0.1"
        assert neighbour.get("/fhir/Patient").status_code == 401
        config = neighbour.get("/.well-known/smart-configuration").json()
        assert config["token_endpoint"].startswith("http://127.0.0.1:")  # not https
        # The configured proxy.
        assert _session_address(proxy, login) == FORWARDED

    with audit_store(settings) as store:
        signed_in = [event.source_address for event in events(store, Tag.AUTH_SIGNED_IN)]
        assert signed_in == ["127.0.0.1", FORWARDED]
        (anonymous,) = events(store, Tag.AUTH_TOKEN_REFUSED)
        assert anonymous.source_address == "127.0.0.1"
        everything = [event.source_address for event in events(store)]
        assert SPOOFED not in everything
