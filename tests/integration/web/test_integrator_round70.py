"""Integrator round 70, the operator's load balancer: ``/readyz`` says whether this
process can serve, ``/healthz`` only that it answers. There was only ``/healthz``,
which said ``ok`` with the database gone, so a balancer kept sending every request to
a server that answered each with a 503. On a real PostgreSQL behind a proxy that is
cut and restored."""

from __future__ import annotations

import time

from tests.support.client import FhirTestClient
from tests.support.tcp_proxy import TcpProxy


def test_readyz_answers_503_while_the_database_is_gone_and_200_when_it_is_back(
    behind_proxy: tuple[TcpProxy, FhirTestClient],
) -> None:
    from carevault.web.health import Readiness  # new in round 70; the other test runs before

    proxy, web = behind_proxy
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


def test_healthz_answers_while_the_database_is_gone(
    behind_proxy: tuple[TcpProxy, FhirTestClient],
) -> None:
    """A liveness probe that failed with the database would have an orchestrator restart
    every process for its database's outage: ``/healthz`` answered 503 once the
    containment state (re-read every half second on any request) could not be read."""
    proxy, web = behind_proxy
    assert web.get("/healthz").status_code == 200
    proxy.cut()
    time.sleep(1.0)
    for _ in range(3):
        alive = web.get("/healthz")
        assert alive.status_code == 200, alive.text
        assert alive.json()["status"] == "ok"
    # The rest of the API fails closed as before.
    assert web.get("/fhir/Patient/x").status_code == 503
