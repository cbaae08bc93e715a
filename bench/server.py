"""A real CareVault server process on loopback, and a token from it, as a script gets one."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyotp
from tests.support.server import running_server as serve_process

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
        """User + system CPU of the server process and its worker processes (every
        thread), from /proc."""
        return sum(_cpu_ticks(pid) for pid in _tree(self.process.pid)) / os.sysconf("SC_CLK_TCK")

    def process_serving(self, client_port: int) -> int | None:
        """The pid of the server process (one of uvicorn's workers) that holds the
        accepted end of the loopback connection from ``client_port``; None if none does
        (not accepted yet). Read from /proc: the socket's inode, then whose descriptor."""
        _, port = self.host_port
        inode = _connection_inode(port, client_port)
        if inode is None:
            return None
        wanted = f"socket:[{inode}]"
        for pid in _tree(self.process.pid):
            try:
                descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
            except OSError:
                continue
            for descriptor in descriptors:
                try:
                    if os.readlink(descriptor) == wanted:
                        return pid
                except OSError:
                    continue
        return None


def _stat(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def _cpu_ticks(pid: int) -> int:
    fields = _stat(pid)
    return int(fields[11]) + int(fields[12]) if fields else 0


def _connection_inode(server_port: int, client_port: int) -> int | None:
    """The inode of the server's end of a TCP connection (local port ``server_port``,
    remote port ``client_port``), from /proc/net/tcp and tcp6."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote = fields[1].rsplit(":", 1)[1], fields[2].rsplit(":", 1)[1]
            if int(local, 16) == server_port and int(remote, 16) == client_port:
                return int(fields[9]) or None
    return None


def _tree(root: int) -> list[int]:
    """``root`` and every live process under it (uvicorn's workers)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            parents[int(entry.name)] = int(fields[1])
    found = [root]
    for pid in found:
        found.extend(child for child, parent in parents.items() if parent == pid)
    return found


@contextmanager
def running_server(target: Deployment, log_dir: Path, workers: int = 1) -> Iterator[Server]:
    """``python -m carevault serve --workers N`` for ``target`` on a free loopback port
    (the same launcher the end-to-end tests use)."""
    with serve_process(target.server_environment(), log_dir, workers) as running:
        yield Server(target.label, running.url, running.process, running.log)


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
