"""The data directory on a small filesystem (a tmpfs of a few MB) that fills up under
load: CareVault refuses with 503 and says why in its log, corrupts nothing, and serves
again once space returns; the ledgers verify and every acknowledged write is there.

Mounting needs root (CI runs as root); elsewhere the test is skipped with the reason."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from carevault.bootstrap import build_services
from tests.conftest import make_settings
from tests.support.mixed_load import prepare_home, wait_until
from tests.support.server import environment, run_cli, running_server

pytestmark = pytest.mark.e2e

SIZE_MB = 48


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(directory: Path, leave_bytes: int) -> Path:
    """A ballast file that takes all but ``leave_bytes`` of the filesystem."""
    ballast = directory / "ballast"
    stats = os.statvfs(directory)
    room = stats.f_bavail * stats.f_frsize - leave_bytes
    with ballast.open("wb") as handle:
        block = b"\0" * (1 << 20)
        while room > 0:
            try:
                handle.write(block[: min(room, len(block))])
                handle.flush()
            except OSError:
                break
            room -= len(block)
    return ballast


def test_a_full_disk_refuses_with_503_and_serves_again_when_space_returns(
    small_disk: Path, tmp_path: Path
) -> None:
    home = small_disk / "home"
    env = environment(
        home,
        None,
        {
            "CAREVAULT_DIRECT_GRANT": "true",
            "CAREVAULT_ARGON2_MEMORY_KIB": "8192",
            "CAREVAULT_ARGON2_TIME_COST": "1",
            "CAREVAULT_RATE_LIMIT_SOURCE_PER_SECOND": "0",
            "CAREVAULT_RATE_LIMIT_ACCOUNT_PER_SECOND": "0",
            "CAREVAULT_DETECT_RESPONSES": "high=raise,medium=raise",
            "CAREVAULT_RELEASE_BUDGET": "front_desk=1000000/1000000",
        },
    )
    cast = prepare_home(make_settings(home))
    acknowledged: dict[str, str] = {}
    statuses: list[int] = []
    lock = threading.Lock()
    with running_server(env, tmp_path) as server:
        token = cast.desk_token
        ballast = fill(small_disk, leave_bytes=256 * 1024)
        headers = {"authorization": f"Bearer {token}", "content-type": "application/fhir+json"}
        stop = threading.Event()

        def write(worker: int) -> None:
            note = "x" * 200  # a long name fills the disk sooner
            with httpx.Client(base_url=server.fhir, headers=headers, timeout=30) as client:
                n = 0
                while not stop.is_set():
                    family = f"Full{worker}x{n}"
                    body = {"resourceType": "Patient", "name": [{"family": family, "text": note}]}
                    response = client.post("/Patient", content=json.dumps(body))
                    with lock:
                        statuses.append(response.status_code)
                        if response.status_code == 201:
                            acknowledged[response.json()["id"]] = family
                    n += 1

        workers = [threading.Thread(target=write, args=(n,)) for n in range(3)]
        for thread in workers:
            thread.start()
        try:
            assert wait_until(
                lambda: statuses.count(503) >= 10 or not set(statuses) <= {201, 503}, 120
            ), sorted(set(statuses))
        finally:
            stop.set()
            for thread in workers:
                thread.join()
        assert set(statuses) <= {201, 503}, sorted(set(statuses))
        with httpx.Client(base_url=server.fhir, headers=headers, timeout=30) as client:
            refused = client.post("/Patient", content=json.dumps({"resourceType": "Patient"}))
            assert refused.status_code == 503
            assert "storage unavailable" in refused.text or "ledger" in refused.text
            ballast.unlink()
            assert wait_until(
                lambda: (
                    client.post(
                        "/Patient", content=json.dumps({"resourceType": "Patient"})
                    ).status_code
                    == 201
                ),
                30,
            )
            for resource_id, family in acknowledged.items():
                read = client.get(f"/Patient/{resource_id}")
                assert read.status_code == 200
                assert read.json()["name"][0]["family"] == family
    log = server.log.read_text()
    assert "disk full" in log, log[-2000:]
    services = build_services(make_settings(home))
    try:
        for ledger in services.ledgers():
            report = ledger.verify()
            assert report.ok, report.problems
    finally:
        services.close()
    verified = run_cli(env, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
