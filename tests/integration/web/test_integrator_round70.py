"""Integrator round 70, the operator's load balancer: ``/readyz`` says whether this
process can serve, ``/healthz`` only that it answers. There was only ``/healthz``,
which said ``ok`` with the database gone, so a balancer kept sending every request to
a server that answered each with a 503. On a real PostgreSQL behind a proxy that is
cut and restored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import make_url

from carevault.bootstrap import build_services
from carevault.web.app import create_app
from tests.conftest import make_settings
from tests.support.client import FhirTestClient
from tests.support.tcp_proxy import TcpProxy


@pytest.fixture
def proxied_url(pg_schema: str) -> Iterator[tuple[TcpProxy, str]]:
    url = make_url(pg_schema)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    yield proxy, url.set(port=proxy.port).render_as_string(hide_password=False)
    proxy.close()


def test_readyz_answers_503_while_the_database_is_gone_and_200_when_it_is_back(
    proxied_url: tuple[TcpProxy, str], tmp_path: Path
) -> None:
    proxy, url = proxied_url
    settings = make_settings(tmp_path / "home", url)
    services = build_services(settings, create_keys=True, migrate=True)
    try:
        with FhirTestClient(create_app(settings, services)) as web:
            ready = web.get("/readyz", headers={"host": "10.0.0.7"})
            assert ready.status_code == 200, ready.text
            assert ready.json()["status"] == "ready"
            assert ready.json()["checks"] == {
                "database": "ok",
                "key_store": "ok",
                "key_provider": "ok",
            }
            assert ready.headers["cache-control"] == "no-store"
            proxy.cut()
            gone = web.get("/readyz")
            assert gone.status_code == 503
            assert gone.json()["status"] == "unavailable"
            assert gone.json()["checks"]["database"] == "unavailable"
            assert gone.json()["checks"]["key_provider"] == "ok"
            # What is down is named, never how it is reached.
            assert str(proxy.port) not in gone.text and "127.0.0.1" not in gone.text
            assert web.get("/healthz").status_code == 200
            proxy.restore()
            back = web.get("/readyz")
            assert back.status_code == 200, back.text
    finally:
        services.close()
