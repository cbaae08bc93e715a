"""Containment reaches every server process within a second, and a suspended account
stops a bulk reader mid-stream: two real server processes over one database."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from carevault.bootstrap import build_services
from carevault.config import Settings
from carevault.containment.service import Officer
from carevault.containment.state import Mode
from tests.support.auth import Login, colleagues, fresh_code, login_for, token_for
from tests.support.server import RunningServer, environment, run_cli, running_servers
from tests.support.template import served_staff

pytestmark = pytest.mark.e2e


@pytest.fixture
def two_servers(
    settings: Settings, tmp_path: Path
) -> Iterator[tuple[RunningServer, RunningServer]]:
    env = served_staff(settings)
    with running_servers(env, tmp_path, 2) as (first, second):
        yield first, second


def register_patients(server: RunningServer, token: str, count: int) -> None:
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
        timeout=60,
    )
    assert response.status_code == 200, response.text


def test_phi_offline_reaches_both_processes_within_a_second(
    two_servers: tuple[RunningServer, RunningServer], settings: Settings
) -> None:
    first, second = two_servers
    (desk,), _ = colleagues(settings.home, "front_desk")
    token = token_for(first.url, desk)
    headers = {"authorization": f"Bearer {token}"}
    for server in two_servers:
        assert httpx.get(f"{server.fhir}/Patient?_count=1", headers=headers).status_code == 200
    officer = login_for(settings.home, "privacy_officer")
    env = environment(settings.home, settings.database_url)
    started = run_cli(
        env, "contain", "start", "phi-offline", "--reason", "drill", "--officer",
        officer.username, "--totp", fresh_code(officer),
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    switched = time.monotonic()
    refused_after: dict[str, float] = {}
    # One client for the polls: a new one per request (its own TLS context, about 25 ms of
    # CPU) would spend the second being timed on the client's side.
    with httpx.Client(headers=headers) as client:
        while len(refused_after) < 2 and time.monotonic() - switched < 5:
            for server in two_servers:
                if server.url in refused_after:
                    continue
                status = client.get(f"{server.fhir}/Patient?_count=1").status_code
                if status == 503:
                    refused_after[server.url] = time.monotonic() - switched
            time.sleep(0.02)
    assert set(refused_after) == {first.url, second.url}
    assert max(refused_after.values()) < 1.0, refused_after
    # Scheduling still answers in both.
    for server in two_servers:
        assert httpx.get(f"{server.fhir}/Slot?_count=1", headers=headers).status_code == 200


def test_suspension_stops_a_bulk_reader_within_a_second(
    two_servers: tuple[RunningServer, RunningServer],
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first, second = two_servers
    (thief,), _ = colleagues(settings.home, "front_desk")
    token = token_for(first.url, thief)
    register_patients(first, token, 200)
    received: list[tuple[float, int]] = []
    refused = threading.Event()

    def bulk_read() -> None:
        headers = {"authorization": f"Bearer {token}"}
        with httpx.Client(timeout=10) as client:
            while not refused.is_set():
                for server in (first, second):
                    response = client.get(f"{server.fhir}/Patient?_count=50", headers=headers)
                    if response.status_code != 200:
                        refused.set()
                        return
                    received.append((time.monotonic(), len(response.json().get("entry", []))))

    reader = threading.Thread(target=bulk_read)
    reader.start()
    time.sleep(1.0)
    officer: Login = login_for(settings.home, "privacy_officer")
    services = build_services(settings)
    try:
        services.contain.start(
            Officer(officer.username, fresh_code(officer)),
            Mode.ACCOUNT_SUSPENDED,
            thief.username,
            "bulk reading",
        )
        suspended = time.monotonic()
    finally:
        services.close()
    reader.join(timeout=10)
    assert refused.is_set()
    before = sum(count for at, count in received if at <= suspended)
    after = [(at, count) for at, count in received if at > suspended]
    records_after = sum(count for _, count in after)
    last = max((at for at, _ in after), default=suspended)
    with capsys.disabled():
        print(
            f"\nbulk reader: {before} records before the suspension, {records_after} after it "
            f"({len(after)} responses), last one {last - suspended:.3f} s after"
        )
    assert before > 0
    assert last - suspended < 1.0
