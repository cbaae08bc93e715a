"""``carevault serve --workers 2``: real processes writing one audit ledger, workers
killed (SIGKILL) at random while clients write and read. Afterwards the ledger is one
sequence without gaps or duplicates, every acknowledged write and read has exactly one
entry, and ``audit verify`` passes."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from carevault.config import Settings
from tests.support.auth import login_for, token_for
from tests.support.server import run_cli, running_server
from tests.support.template import served_staff

pytestmark = pytest.mark.e2e
#: Workers killed per backend (``CAREVAULT_TEST_KILLS``: more in the long CI run).
KILLS = max(2, int(os.environ.get("CAREVAULT_TEST_KILLS", "3")))
#: How long uvicorn may take to start a killed worker again before the test fails.
RESTART_SECONDS = 150


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (uvicorn's workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces; the parent pid is the 2nd field after it.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def test_workers_killed_at_random_leave_one_verifiable_ledger(
    settings: Settings, tmp_path: Path
) -> None:
    env = served_staff(settings)
    created: list[str] = []
    read: Counter[str] = Counter()
    lock = threading.Lock()
    stop = threading.Event()
    chooser = random.Random(2)
    with running_server(env, tmp_path, workers=2) as server:
        token = token_for(server.url, login_for(settings.home, "front_desk"))
        headers = {"authorization": f"Bearer {token}", "content-type": "application/fhir+json"}

        def load(worker: int) -> None:
            n = 0
            while not stop.is_set():
                try:
                    with httpx.Client(base_url=server.fhir, headers=headers, timeout=10) as client:
                        while not stop.is_set():
                            body = {
                                "resourceType": "Patient",
                                "name": [{"family": f"W{worker}x{n}"}],
                            }
                            n += 1
                            response = client.post("/Patient", content=json.dumps(body))
                            if response.status_code != 201:
                                continue
                            ident = response.json()["id"]
                            with lock:
                                created.append(ident)
                            if client.get(f"/Patient/{ident}").status_code == 200:
                                with lock:
                                    read[ident] += 1
                except httpx.HTTPError:
                    time.sleep(0.05)  # the worker on this connection was killed

        threads = [threading.Thread(target=load, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        kills = 0
        # Each kill waits for uvicorn to start a worker again: on a loaded two-core machine
        # a new process takes seconds to import the app, and the supervisor restarts a dead
        # worker only once the other has answered its ping. A wait per kill, not one for
        # all: one CI run (60 s for all) got a single kill.
        while kills < KILLS:
            waited = time.monotonic() + RESTART_SECONDS
            while len(_serving(server.process.pid)) < 2:
                if server.process.poll() is not None or time.monotonic() > waited:
                    pytest.fail(
                        f"uvicorn did not start a worker again within {RESTART_SECONDS} s "
                        f"after kill {kills} (server exit code {server.process.poll()}):\n"
                        f"{server.log.read_text()[-3000:]}"
                    )
                time.sleep(0.2)
            time.sleep(1 + chooser.random() * 2)
            serving = _serving(server.process.pid)
            if len(serving) >= 2:
                os.kill(chooser.choice(serving), signal.SIGKILL)
                kills += 1
        deadline = time.monotonic() + 120
        # Enough writes to interleave, however slow the machine (the checks below are of
        # integrity, not speed).
        while len(created) < 12 and time.monotonic() < deadline:
            time.sleep(0.1)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert len(created) >= 12

    verified = run_cli(env, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr

    from carevault.bootstrap import build_services

    services = build_services(settings)
    try:
        entries = list(services.audit_ledger.store.entries())
    finally:
        services.close()
    assert [seq for seq, _ in entries] == list(range(len(entries)))
    documents = [json.loads(data) for _, data in entries]
    creates = Counter(
        d.get("resource_id")
        for d in documents
        if d["tag"] == "fhir:resource:create" and d["outcome"] == "success"
    )
    reads = Counter(
        d.get("resource_id")
        for d in documents
        if d["tag"] == "fhir:resource:read" and d["outcome"] == "success"
    )
    for ident in created:
        assert creates[ident] == 1
    for ident, count in read.items():
        assert reads[ident] >= count
    assert len({data for _, data in entries}) == len(entries)


def _serving(pid: int) -> list[int]:
    """uvicorn's worker processes (it may also run a resource tracker, not to be killed)."""
    return [child for child in _children(pid) if b"spawn_main" in _cmdline(child)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
