"""A real CareVault server process on loopback, for end-to-end tests."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def environment(
    home: Path, database_url: str | None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CAREVAULT_")}
    env.update({"CAREVAULT_HOME": str(home), "CAREVAULT_ENVIRONMENT": "test"})
    if database_url:
        env["CAREVAULT_DATABASE_URL"] = database_url
    env.update(extra or {})
    return env


def run_cli(
    env: Mapping[str, str], *args: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "carevault", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def invoke_cli(
    env: Mapping[str, str], *args: str, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``run_cli`` in this process, through typer's runner: the same command under the
    same CAREVAULT_* environment, without a Python start and the app's imports (2-5 s a
    call on a slow machine); ``input`` is its stdin. An exception the command let out is
    in ``stderr``, as a process would have printed it."""
    from typer.testing import CliRunner

    from carevault.cli import app

    wanted: dict[str, str | None] = {
        key: value for key, value in env.items() if key.startswith("CAREVAULT_")
    }
    wanted.update(
        {key: None for key in os.environ if key.startswith("CAREVAULT_") and key not in env}
    )
    with _logging_kept():
        result = CliRunner().invoke(app, list(args), input=input, env=wanted)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, stderr)


@contextmanager
def _logging_kept() -> Iterator[None]:
    """Put the server loggers back as they were after a command run in this process.
    ``carevault detect`` and ``serve`` configure them as a process of their own would,
    with a handler bound to the runner's standard error, which is closed once the
    command returns: a later command whose ledger writer logs would print a logging
    error's traceback into its own captured output."""
    from carevault.logformat import SERVER_LOGGERS

    loggers = [logging.getLogger(name) for name in SERVER_LOGGERS]
    kept = [(logger, logger.handlers[:], logger.level, logger.propagate) for logger in loggers]
    try:
        yield
    finally:
        for logger, handlers, level, propagate in kept:
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def fhir(self) -> str:
        return f"{self.url}/fhir"

    def kill(self) -> None:
        """SIGKILL: no chance to flush or clean up, as in a crash."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


def _launch(env: Mapping[str, str], log_dir: Path, workers: int) -> RunningServer:
    port = free_port()
    log = log_dir / f"server-{port}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "carevault",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            env=dict(env),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return RunningServer(f"http://127.0.0.1:{port}", process, log)


def _wait_started(server: RunningServer, deadline: float) -> None:
    # One client for every poll: a client each (its own TLS context, about 25 ms of
    # CPU) took CPU from the server starting beside it, ten times a second.
    with httpx.Client(timeout=1) as probe:
        while True:
            if server.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{server.log.read_text()[-3000:]}")
            try:
                if probe.get(f"{server.url}/healthz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{server.log.read_text()[-3000:]}")
            time.sleep(0.1)


def _stop(server: RunningServer) -> None:
    process = server.process
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def running_server(
    env: Mapping[str, str],
    log_dir: Path,
    workers: int = 1,
    start_seconds: float | None = None,
) -> Iterator[RunningServer]:
    with running_servers(env, log_dir, 1, workers, start_seconds) as (server,):
        yield server


@contextmanager
def running_servers(
    env: Mapping[str, str],
    log_dir: Path,
    count: int,
    workers: int = 1,
    start_seconds: float | None = None,
) -> Iterator[tuple[RunningServer, ...]]:
    """``count`` server processes over the same data directory, launched together and each
    waited for (one after another, each start-up added to the wait); stopped afterwards."""
    servers: list[RunningServer] = []
    try:
        for _ in range(count):
            servers.append(_launch(env, log_dir, workers))
        # Each worker process starts on its own (imports, services): allow for each.
        deadline = time.monotonic() + (start_seconds or 180 * workers * count)
        for server in servers:
            _wait_started(server, deadline)
        yield tuple(servers)
    finally:
        for server in servers:
            _stop(server)
