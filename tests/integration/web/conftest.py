"""The web tests' own fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from carevault.bootstrap import build_services
from carevault.web.app import create_app
from tests.conftest import make_settings
from tests.support.client import FhirTestClient
from tests.support.tcp_proxy import TcpProxy, proxied


@pytest.fixture
def behind_proxy(pg_schema: str, tmp_path: Path) -> Iterator[tuple[TcpProxy, FhirTestClient]]:
    """A server whose PostgreSQL is reached through a proxy the test can cut or stall,
    and the proxy."""
    with proxied(pg_schema) as (proxy, url):
        settings = make_settings(tmp_path / "home", url)
        services = build_services(settings, create_keys=True, migrate=True)
        try:
            with FhirTestClient(create_app(settings, services)) as web:
                yield proxy, web
        finally:
            proxy.resume()
            services.close()
