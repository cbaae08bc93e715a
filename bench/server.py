"""A real CareVault server process on loopback, and a token from it, as a script gets one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyotp

from bench.serving import Deployment, Login
from carevault.sim.loader import DEMO_CLIENT_ID


@dataclass
class Server:
    label: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def host_port(self) -> tuple[str, int]:
        parsed = httpx.URL(self.url)
        return parsed.host, parsed.port or 80

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process (every thread), from /proc."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def running_server(target: Deployment, log_dir: Path) -> Iterator[Server]:
    """``python -m carevault serve`` for ``target`` on a free loopback port."""
    port = free_port()
    log = log_dir / f"server-{target.label}-{port}.log"
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
            ],
            env=target.server_environment(),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server {target.label} exited:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server {target.label} did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield Server(target.label, url, process, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def password_token(url: str, login: Login, scope: str = "user/*.rs") -> str:
    """An access token from the direct grant (username + password + TOTP), as a script gets."""
    response = httpx.post(
        f"{url}/auth/token",
        data={
            "grant_type": "password",
            "client_id": DEMO_CLIENT_ID,
            "username": login.username,
            "password": login.password,
            "totp": pyotp.TOTP(login.totp_secret).now(),
            "scope": scope,
        },
        timeout=30,
    )
    if response.status_code != 200:
        raise RuntimeError(f"token refused ({response.status_code}): {response.text}")
    token: str = response.json()["access_token"]
    return token
