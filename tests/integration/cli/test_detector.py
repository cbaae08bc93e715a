"""``carevault serve`` runs the detectors in a process of their own (``carevault
detect``): it judges what the server processes commit, is started again when it dies,
stops when the server does (its last batch written, its lease given up), and stops by
itself when the server is killed. The server processes run no engine of their own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from carevault.bootstrap import Services, build_services
from carevault.cli.detector import PARENT_CHECK_SECONDS
from carevault.config import Settings
from carevault.db import read_transaction
from carevault.detect.engine import CURSOR
from carevault.detect.state import Cursor, read_cursor
from tests.support.auth import colleagues, token_for
from tests.support.server import RunningServer, invoke_cli, running_server
from tests.support.template import served_staff

pytestmark = pytest.mark.e2e
T = TypeVar("T")


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return served_staff(settings)


@pytest.fixture
def server(env: dict[str, str], tmp_path: Path) -> Iterator[RunningServer]:
    with running_server(env, tmp_path) as running:
        yield running


def children(pid: int) -> dict[int, str]:
    """The processes whose parent is ``pid``, with their command lines."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found[int(entry.name)] = command
    return found


def detector_of(server: RunningServer) -> int | None:
    found = [
        pid
        for pid, command in children(server.process.pid).items()
        if " carevault detect " in f"{command} "
    ]
    assert len(found) <= 1, found
    return found[0] if found else None


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def waited(what: Callable[[], T | None], seconds: float = 60.0) -> T:
    deadline = time.monotonic() + seconds
    while (found := what()) is None or found is False:
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.1)
    return found


def ledger_state(settings: Settings) -> tuple[Cursor, int]:
    """The detectors' stored cursor and the audit ledger's head."""
    services = build_services(replace_detect_thread(settings, False))
    try:
        with read_transaction(services.engine) as connection:
            cursor = read_cursor(connection, CURSOR)
        head, _ = services.audit_ledger.store.head()
    finally:
        services.close()
    return cursor, head


def judged_to_head(settings: Settings) -> Cursor | None:
    """The stored cursor once the detectors have judged the whole ledger, else None."""
    cursor, head = ledger_state(settings)
    return cursor if cursor.position == head else None


def replace_detect_thread(settings: Settings, threaded: bool) -> Settings:
    return settings.model_copy(update={"detect_thread": threaded})


def read_some(server: RunningServer, settings: Settings, count: int) -> None:
    """A front desk account registers and reads ``count`` patients: entries to judge."""
    (desk,), _ = colleagues(settings.home, "front_desk")
    headers = {"authorization": f"Bearer {token_for(server.url, desk)}"}
    with httpx.Client(timeout=30) as client:
        for n in range(count):
            created = client.post(
                f"{server.fhir}/Patient",
                json={"resourceType": "Patient", "name": [{"family": f"Detect{n}"}]},
                headers=headers,
            )
            assert created.status_code == 201, created.text
            read = client.get(f"{server.fhir}/Patient/{created.json()['id']}", headers=headers)
            assert read.status_code == 200


def test_the_detectors_run_apart_and_judge_what_the_server_commits(
    server: RunningServer, settings: Settings, env: dict[str, str]
) -> None:
    detector = waited(lambda: detector_of(server))
    read_some(server, settings, 3)
    # Judged up to the head by the detection process, whose lease it is.
    cursor = waited(lambda: judged_to_head(settings))
    assert cursor.owner is not None
    assert cursor.lease_until_us > 0
    assert alive(detector)
    # What `carevault status` tells the officer of it.
    status = invoke_cli(env, "status")
    assert status.returncode == 0, status.stderr
    assert "a process is judging them" in status.stdout


def test_a_detection_process_that_dies_is_started_again(
    server: RunningServer, settings: Settings
) -> None:
    first = waited(lambda: detector_of(server))
    os.kill(first, signal.SIGKILL)
    second = waited(lambda: pid if (pid := detector_of(server)) not in (None, first) else None)
    assert alive(second)
    # The new one takes the lease once the dead one's lapses, and judges what follows.
    read_some(server, settings, 2)
    waited(lambda: judged_to_head(settings))
    assert "starting it again" in server.log.read_text()


def test_stopping_the_server_stops_the_detectors_after_their_last_write(
    env: dict[str, str], settings: Settings, tmp_path: Path
) -> None:
    with running_server(env, tmp_path) as running:
        detector = waited(lambda: detector_of(running))
        # Judging: it holds the lease. A process stopped while it still imports has no
        # last write to make (one CI run stopped it then: the cursor stayed at 0, for the
        # next server's detectors to judge from).
        waited(lambda: ledger_state(settings)[0].owner)
        read_some(running, settings, 2)
    # running_server stopped it with SIGTERM: the detection process has gone too, its
    # lease given up (a new server's detectors take over at once) and nothing left
    # unjudged.
    waited(lambda: not alive(detector) or None, 30)
    cursor, head = ledger_state(settings)
    assert cursor.lease_until_us == 0
    assert cursor.position == head


def test_a_killed_server_leaves_no_detection_process_behind(
    env: dict[str, str], tmp_path: Path
) -> None:
    with running_server(env, tmp_path) as running:
        detector = waited(lambda: detector_of(running))
        running.kill()
        waited(lambda: not alive(detector) or None, 30)


def test_server_processes_run_no_engine_of_their_own(settings: Settings) -> None:
    built: Services = build_services(replace_detect_thread(settings, False))
    try:
        built.start_background()
        detection = built.detection
        assert detection is not None and detection.enabled
        assert not detection.threaded
        assert not detection.engine.alive
        # Nothing committed is kept for a thread that does not run.
        assert detection.engine.committed not in built.audit_ledger.writer.listeners
    finally:
        built.close()
    threaded = build_services(settings)
    try:
        assert threaded.detection is not None
        assert threaded.detection.engine.committed in threaded.audit_ledger.writer.listeners
        # What ``carevault detect`` watches, to end (and be started again) once its
        # thread has ended.
        threaded.detection.start()
        assert threaded.detection.engine.alive
        threaded.detection.engine.stop()
        assert not threaded.detection.engine.alive
    finally:
        threaded.close()


def test_detect_refuses_to_run_with_detection_off(env: dict[str, str]) -> None:
    done = invoke_cli({**env, "CAREVAULT_DETECT": "false"}, "detect")
    assert done.returncode == 2
    assert "detection is off" in done.stderr


def test_a_detection_process_stopped_alone_is_started_again(
    server: RunningServer, settings: Settings
) -> None:
    """Review of c2d3660: a detection process sent SIGTERM by anyone but ``serve`` (an
    operator's ``kill``, a stray ``pkill``) wrote its batch and exited 0, which ``serve``
    took for a stop on purpose: never started again, and nothing said so, while the
    servers went on answering with no one judging the ledger."""
    first = waited(lambda: detector_of(server))
    # Running, its signal handlers set (killed while starting, it died of the signal).
    waited(lambda: f"detectors running (process {first})" in server.log.read_text() or None)
    os.kill(first, signal.SIGTERM)
    second = waited(lambda: pid if (pid := detector_of(server)) not in (None, first) else None, 30)
    assert alive(second)
    assert "starting it again" in server.log.read_text()


def test_stopping_a_one_process_server_stops_its_detectors_before_it_exits(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Review of c2d3660: with one server process, uvicorn re-raised the SIGTERM it
    caught after its shutdown, which killed ``serve`` before it stopped its detection
    process: the detection process was left to notice by itself (within a second) that
    its parent had gone, and in the meantime judged for no server."""
    with running_server(env, tmp_path) as running:
        detector = waited(lambda: detector_of(running))
        running.process.terminate()
        running.process.wait(timeout=30)
        assert not alive(detector)


def test_a_detection_process_run_on_its_own_outlives_the_shell_that_started_it(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Review of c2d3660: ``carevault detect`` started by hand (``nohup … &``) took the
    shell that started it for ``serve`` and stopped, saying nothing, when that shell
    ended: detection off until someone noticed. Only a process given ``--parent`` (as
    ``serve`` gives) is followed."""
    log = tmp_path / "detect.log"
    shell = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        [
            "/bin/sh",
            "-c",
            f'"{sys.executable}" -m carevault detect >"{log}" 2>&1 & echo $!; wait',
        ],
        env=env,
        stdout=subprocess.PIPE,
    )
    assert shell.stdout is not None
    with shell.stdout:
        detector = int(shell.stdout.readline())
    try:
        # The shell may print the pid before its child has opened the log.
        waited(lambda: (log.exists() and "detectors running" in log.read_text()) or None)
        shell.kill()
        shell.wait(timeout=10)
        time.sleep(3 * PARENT_CHECK_SECONDS)
        assert alive(detector)
    finally:
        if shell.poll() is None:
            shell.kill()
            shell.wait(timeout=10)
        os.kill(detector, signal.SIGTERM)
        waited(lambda: not alive(detector) or None, 30)
