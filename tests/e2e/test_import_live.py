"""``$import`` against a real server process: the worker started with the server takes
the job, and the records read back over the API."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from carevault.config import Settings
from tests.support.auth import colleagues
from tests.support.server import RunningServer, environment, run_cli

pytestmark = pytest.mark.e2e


def test_an_import_sent_to_a_running_server_completes(
    live_server: RunningServer, settings: Settings
) -> None:
    _, clinic = colleagues(settings.home, "front_desk")
    env = environment(settings.home, settings.database_url)
    added = run_cli(
        env, "client", "add", "feed", "--name", "Feed", "--scope", "system/*.cruds",
        "--confidential", "--clinic", clinic,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    secret = added.stdout.rsplit(": ", 1)[1].strip()
    token = httpx.post(
        f"{live_server.url}/auth/token",
        data={"grant_type": "client_credentials", "scope": "system/*.cruds"},
        auth=("feed", secret),
    ).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    body = b"".join(
        json.dumps(
            {
                "resourceType": "Patient",
                "id": f"live-{n}",
                "name": [{"family": f"Livefamily{n}"}],
                "managingOrganization": {"reference": f"Organization/{clinic}"},
            }
        ).encode()
        + b"\n"
        for n in range(3)
    )
    kicked = httpx.post(
        f"{live_server.fhir}/$import",
        content=body,
        headers={
            **auth,
            "Prefer": "respond-async",
            "Content-Type": "application/fhir+ndjson",
        },
    )
    assert kicked.status_code == 202, kicked.text
    status_url = kicked.headers["content-location"]
    deadline = time.monotonic() + 120
    polled = httpx.get(status_url, headers=auth)
    while polled.status_code == 202 and time.monotonic() < deadline:
        time.sleep(0.2)
        polled = httpx.get(status_url, headers=auth)
    assert polled.status_code == 200, polled.text
    assert "3 accepted, 0 rejected" in polled.json()["issue"][0]["diagnostics"]
    read = httpx.get(f"{live_server.fhir}/Patient/live-1", headers=auth)
    assert read.status_code == 200 and read.json()["name"][0]["family"] == "Livefamily1"
