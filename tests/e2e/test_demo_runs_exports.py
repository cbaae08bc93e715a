"""An integrator tries Bulk Data on ``carevault demo`` (integrator round 64), as README's
quick start has them do: its own key pair registered with ``client add --jwks``, a
Patient-level ``$export`` kicked off, approved by the demo's privacy officer, then polled
until the manifest comes. The demo built its services itself and handed them to the app,
which starts background work only for services it built: the export worker never ran,
and the job answered ``202`` "approved, queued" for ever (nor did the checkpoint
schedule, the sealer or the detectors' thread run, which docs/operations.md says the
demo keeps)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.auth import fresh_code, login_for, token_for
from tests.support.server import environment, free_port, run_cli

pytestmark = pytest.mark.e2e

SERVICE = "demo-bulk"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _demo(home: Path, env: dict[str, str], log: Path) -> Iterator[str]:
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "carevault",
                "demo",
                "--home",
                str(home),
                "--patients",
                "12",
                "--port",
                str(port),
            ],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        with httpx.Client(timeout=1) as probe:
            while True:
                assert process.poll() is None, log.read_text()[-3000:]
                try:
                    if probe.get(f"{url}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, Path, dict[str, str]]]:
    home = tmp_path / "demo-home"
    env = environment(
        home,
        None,
        {
            "CAREVAULT_ARGON2_MEMORY_KIB": "8192",
            "CAREVAULT_ARGON2_TIME_COST": "1",
            "CAREVAULT_EXPORT_POLL_SECONDS": "0.2",
            # The detectors judge a new service reading at an hour its role rarely works
            # (the demo's baselines) and may suspend it: what this test runs is the export.
            "CAREVAULT_DETECT": "false",
        },
    )
    for url in _demo(home, env, tmp_path / "demo.log"):
        yield url, home, env


def _assertion(key: rsa.RSAPrivateKey, token_url: str) -> str:
    now = int(time.time())
    claims = {"iss": SERVICE, "sub": SERVICE, "aud": token_url, "exp": now + 300}
    return jwt.encode(
        {**claims, "jti": str(uuid.uuid4())},
        key,
        algorithm="RS384",
        headers={"kid": "demo-1", "typ": "JWT"},
    )


def test_an_export_approved_on_the_demo_is_run_and_its_manifest_served(
    demo: tuple[str, Path, dict[str, str]], tmp_path: Path
) -> None:
    url, home, env = demo
    desk = login_for(home, "front_desk")
    (clinic_name,) = desk.clinics
    directory = httpx.get(
        f"{url}/fhir/Organization",
        params={"_count": "50"},
        headers={"authorization": f"Bearer {token_for(url, desk)}"},
    )
    assert directory.status_code == 200, directory.text
    (clinic,) = [
        entry["resource"]["id"]
        for entry in directory.json()["entry"]
        if entry["resource"].get("name") == clinic_name
    ]

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    key_file = tmp_path / "demo-bulk.jwks.json"
    key_file.write_text(
        json.dumps({"keys": [{**public, "kid": "demo-1", "alg": "RS384", "use": "sig"}]})
    )
    added = run_cli(
        env,
        "client",
        "add",
        SERVICE,
        "--name",
        "Demo bulk feed",
        "--confidential",
        "--scope",
        "system/*.read",
        "--clinic",
        clinic,
        "--jwks",
        str(key_file),
    )
    assert added.returncode == 0, added.stderr

    token_url = httpx.get(f"{url}/fhir/.well-known/smart-configuration").json()["token_endpoint"]

    def bearer() -> dict[str, str]:
        granted = httpx.post(
            token_url,
            data={
                "grant_type": "client_credentials",
                "scope": "system/*.read",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": _assertion(key, token_url),
            },
        )
        assert granted.status_code == 200, granted.text
        return {"authorization": f"Bearer {granted.json()['access_token']}"}

    kicked = httpx.get(
        f"{url}/fhir/Patient/$export",
        headers={**bearer(), "accept": "application/fhir+json", "prefer": "respond-async"},
    )
    assert kicked.status_code == 202, kicked.text
    status_url = kicked.headers["content-location"]

    officer = login_for(home, "privacy_officer")
    # Signed in first: each code is used once, and the approval's must come after it.
    officer_token = token_for(url, officer)
    approved = httpx.post(
        f"{url}/admin/exports/{status_url.rsplit('/', 1)[1]}/approve",
        json={"totp": fresh_code(officer)},
        headers={"authorization": f"Bearer {officer_token}"},
    )
    assert approved.status_code == 200, approved.text

    headers = bearer()
    deadline = time.monotonic() + 60
    while (polled := httpx.get(status_url, headers=headers)).status_code == 202:
        # Before: "approved, queued" until the deadline, whatever the client waited.
        assert time.monotonic() < deadline, polled.headers.get("x-progress")
        time.sleep(0.25)
    assert polled.status_code == 200, polled.text
    manifest = polled.json()
    assert manifest["requiresAccessToken"] is True
    assert manifest["error"] == []
    for item in manifest["output"]:
        fetched = httpx.get(item["url"], headers=headers)
        assert fetched.status_code == 200
        assert len(fetched.content.splitlines()) == item["count"]
    assert httpx.delete(status_url, headers=headers).status_code == 202
