"""Which redirect URIs an app may be registered with (``access/clients.py``)."""

from __future__ import annotations

import pytest

from carevault.access.clients import redirect_uri_refusal


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example/callback",
        "https://app.example:8443/cb?x=1",
        "http://127.0.0.1:8765/callback",
        "http://127.0.0.1/callback",
        "http://localhost:3000/cb",
        "http://[::1]:8080/cb",
    ],
)
def test_https_and_loopback_http_are_registered(uri: str) -> None:
    assert redirect_uri_refusal(uri) is None


@pytest.mark.parametrize(
    "uri",
    [
        # Adversary round 43: each passed the prefix test as "loopback", sending codes
        # in the clear to a host that is not this machine.
        "http://localhost.evil.example/cb",
        "http://127.0.0.1.evil.example/cb",
        "http://127.0.0.1@evil.example/cb",
        "http://localhost:80@evil.example/cb",
        "http://ward.example/callback",
        "https://user@app.example/cb",
        "https://app.example/cb#fragment",
        "https:///cb",
        "http://127.0.0.1:port/cb",
        "javascript:alert(1)",
    ],
)
def test_other_uris_are_refused(uri: str) -> None:
    assert redirect_uri_refusal(uri) is not None
