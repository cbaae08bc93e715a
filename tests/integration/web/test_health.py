"""``/readyz`` with a database that hangs rather than goes away: behind a partition no
connection is reset, and a check's query waits on its read for as long as the
partition lasts. A check is one thread of the server's pool, which a thread cannot be
taken back from: ``/readyz`` must answer within its bound all the same, and a balancer's
probe every second must not start another hung thread each time, or the pool that
every request's database work runs on (40 threads) would be spent within a minute. On a
real PostgreSQL behind a proxy that holds every byte (``conftest.behind_proxy``)."""

from __future__ import annotations

import threading
import time

from carevault.web.health import CHECK_SECONDS, Readiness
from tests.support.client import FhirTestClient
from tests.support.tcp_proxy import TcpProxy


def _threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.is_alive())


def test_a_hung_database_holds_one_thread_however_often_readyz_is_asked(
    behind_proxy: tuple[TcpProxy, FhirTestClient],
) -> None:
    proxy, web = behind_proxy
    assert web.get("/readyz").status_code == 200
    proxy.stall()
    time.sleep(Readiness.CACHE_SECONDS)
    began = time.monotonic()
    hung = web.get("/readyz")
    took = time.monotonic() - began
    assert hung.status_code == 503, hung.text
    assert hung.json()["checks"]["database"] == "unavailable"
    # Answered within its bound (a check's own, and some room for the runner).
    assert took < CHECK_SECONDS + 1.5, took
    after_first = _threads()
    # A balancer's probes, once a second for a while: each answered at once, and
    # none starts a thread of its own on the database that still hangs.
    for _ in range(3):
        time.sleep(Readiness.CACHE_SECONDS)
        began = time.monotonic()
        again = web.get("/readyz")
        assert time.monotonic() - began < 1.0
        assert again.status_code == 503
        assert again.json()["checks"]["database"] == "unavailable"
    assert _threads() <= after_first, (after_first, _threads())
    # The partition heals: the hung query returns, and the next probe checks anew.
    proxy.resume()
    deadline = time.monotonic() + 15
    status = 503
    while time.monotonic() < deadline and status != 200:
        time.sleep(Readiness.CACHE_SECONDS)
        status = web.get("/readyz").status_code
    assert status == 200
    assert web.get("/fhir/metadata").status_code == 200
