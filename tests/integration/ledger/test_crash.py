"""SIGKILL under write load: every response a client received has its ledger entry, and
the ledger verifies after restart."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from carevault.bootstrap import build_services
from carevault.config import Settings
from tests.support.auth import login_for, token_for
from tests.support.server import RunningServer

pytestmark = pytest.mark.e2e


def test_a_killed_server_loses_no_acknowledged_entry(
    live_server: RunningServer, settings: Settings
) -> None:
    desk = login_for(settings.home, "front_desk")
    token = token_for(live_server.url, desk)
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def load(worker: int) -> None:
        headers = {"authorization": f"Bearer {token}", "content-type": "application/fhir+json"}
        with httpx.Client(base_url=live_server.fhir, headers=headers, timeout=10) as client:
            n = 0
            while not stop.is_set():
                body = {"resourceType": "Patient", "name": [{"family": f"Crash{worker}x{n}"}]}
                try:
                    response = client.post("/Patient", content=json.dumps(body))
                except httpx.HTTPError:
                    return
                if response.status_code == 201:
                    with lock:
                        acknowledged.append(response.json()["id"])
                n += 1

    workers = [threading.Thread(target=load, args=(n,)) for n in range(6)]
    for thread in workers:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 60 and time.monotonic() < deadline:
        time.sleep(0.05)
    live_server.kill()
    stop.set()
    for thread in workers:
        thread.join()
    assert len(acknowledged) >= 60

    services = build_services(settings)
    try:
        recorded = {
            document.get("resource_id")
            for document in (json.loads(data) for _, data in services.audit_ledger.store.entries())
            if document["tag"] == "fhir:resource:create"
        }
        assert set(acknowledged) <= recorded
        for ledger in services.ledgers():
            report = ledger.verify()
            assert report.ok, report.problems
    finally:
        services.close()
