"""Which Host headers the server answers: the configured public host only, or loopback."""

from __future__ import annotations

import pytest

from carevault.config import Settings
from carevault.web.guard import AllowedHosts


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.0.0.1:8000",
        "localhost",
        "LOCALHOST:8765",
        "[::1]",
        "[::1]:8000",
        "127.9.9.9",
    ],
)
def test_without_a_public_url_loopback_names_with_any_port_are_served(host: str) -> None:
    hosts = AllowedHosts(Settings(environment="demo"))

    assert hosts.allows(host.encode())


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "203.0.113.66",
        "127.0.0.1.evil.example",
        "localhost.evil.example:8000",
        "[::1",
        "127.0.0.1:80x",
        "testserver",  # only the test environment's TestClient name
        "",
    ],
)
def test_without_a_public_url_any_other_host_is_refused(host: str) -> None:
    hosts = AllowedHosts(Settings(environment="demo"))

    assert not hosts.allows(host.encode())
    assert not hosts.allows(None)


def test_the_test_environment_also_serves_the_test_clients_name() -> None:
    assert AllowedHosts(Settings(environment="test")).allows(b"testserver")


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("ehr.example.hk", True),
        ("EHR.example.hk:443", True),
        ("ehr.example.hk:8443", False),
        ("127.0.0.1", False),
        ("localhost:8000", False),
        ("testserver", False),
        ("evil.example", False),
    ],
)
def test_with_a_public_url_only_its_host_is_served(host: str, allowed: bool) -> None:
    hosts = AllowedHosts(
        Settings(environment="test", public_base_url="https://ehr.example.hk/fhir")
    )

    assert hosts.allows(host.encode()) is allowed


def test_a_public_url_with_a_port_needs_that_port() -> None:
    hosts = AllowedHosts(Settings(public_base_url="https://ehr.example.hk:8443"))

    assert hosts.allows(b"ehr.example.hk:8443")
    assert not hosts.allows(b"ehr.example.hk")
