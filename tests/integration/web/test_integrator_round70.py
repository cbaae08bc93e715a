"""Integrator round 70, the operator's load balancer: ``/readyz`` says whether this
process can serve, ``/healthz`` only that it answers. There was only ``/healthz``,
which said ``ok`` with the database gone, so a balancer kept sending every request to
a server that answered each with a 503. On a real PostgreSQL behind a proxy that is
cut and restored."""

from __future__ import annotations

import time
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
    from carevault.web.health import Readiness  # new in round 70; the other test runs before

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
            # Checked at most once a second: a flood of probes on this open path is not
            # a flood on the database and the token.
            assert web.get("/readyz").status_code == 200
            time.sleep(Readiness.CACHE_SECONDS)
            gone = web.get("/readyz")
            assert gone.status_code == 503, gone.text
            assert gone.json()["status"] == "unavailable"
            assert gone.json()["checks"]["database"] == "unavailable"
            assert gone.json()["checks"]["key_provider"] == "ok"
            # What is down is named, never how it is reached.
            assert str(proxy.port) not in gone.text and "127.0.0.1" not in gone.text
            # Liveness is not readiness: the process answers, whatever its database.
            alive = web.get("/healthz")
            assert alive.status_code == 200, alive.text
            proxy.restore()
            time.sleep(Readiness.CACHE_SECONDS)
            back = web.get("/readyz")
            assert back.status_code == 200, back.text
    finally:
        services.close()


def test_healthz_answers_while_the_database_is_gone(
    proxied_url: tuple[TcpProxy, str], tmp_path: Path
) -> None:
    """A liveness probe that failed with the database would have an orchestrator restart
    every process for its database's outage: ``/healthz`` answered 503 once the
    containment state (re-read every half second on any request) could not be read."""
    proxy, url = proxied_url
    settings = make_settings(tmp_path / "home", url)
    services = build_services(settings, create_keys=True, migrate=True)
    try:
        with FhirTestClient(create_app(settings, services)) as web:
            assert web.get("/healthz").status_code == 200
            proxy.cut()
            time.sleep(1.0)
            for _ in range(3):
                alive = web.get("/healthz")
                assert alive.status_code == 200, alive.text
                assert alive.json()["status"] == "ok"
            # The rest of the API fails closed as before.
            assert web.get("/fhir/Patient/x").status_code == 503
    finally:
        services.close()
