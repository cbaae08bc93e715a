"""The data directory on a small filesystem (a tmpfs of a few MB) that fills up under
load: CareVault refuses with 503 and says why in its log, corrupts nothing, and serves
again once space returns; the ledgers verify and every acknowledged write is there.
On SQLite the home is on the tmpfs; on PostgreSQL the test's own database is in a
tablespace on it.

Mounting needs root (CI runs as root), and the tablespace a PostgreSQL server on this
machine that may create one; elsewhere the test is skipped with the reason."""

from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from carevault.bootstrap import build_services
from carevault.config import Settings
from carevault.vault.tables import resource_head
from tests.conftest import PG_ADMIN_URL, make_settings
from tests.support.mixed_load import prepare_home, wait_until
from tests.support.server import RunningServer, environment, run_cli, running_server

pytestmark = pytest.mark.e2e

SIZE_MB = 48
#: The tablespace's tmpfs: the new database's copy of the catalogue (about 8 MB), the
#: schema, and a little room for the load.
PG_SIZE_MB = 32
SERVER_SETTINGS = {
    "CAREVAULT_DIRECT_GRANT": "true",
    "CAREVAULT_ARGON2_MEMORY_KIB": "8192",
    "CAREVAULT_ARGON2_TIME_COST": "1",
    "CAREVAULT_RATE_LIMIT_SOURCE_PER_SECOND": "0",
    "CAREVAULT_RATE_LIMIT_ACCOUNT_PER_SECOND": "0",
    "CAREVAULT_DETECT_RESPONSES": "high=raise,medium=raise",
    "CAREVAULT_RELEASE_BUDGET": "front_desk=1000000/1000000",
}


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
    env = environment(home, None, SERVER_SETTINGS)
    cast = prepare_home(make_settings(home))
    with running_server(env, tmp_path) as server:
        ballast = fill(small_disk, leave_bytes=256 * 1024)
        acknowledged = load_until_refused(server, cast.desk_token)
        serves_again_with_everything(server, cast.desk_token, ballast, acknowledged)
    log = server.log.read_text()
    assert "disk full" in log, log[-2000:]
    ledgers_verify(make_settings(home), env)


@dataclass(frozen=True)
class SmallTablespace:
    mount_point: Path
    #: The URL of a database of this test's own whose default tablespace is on the tmpfs.
    database_url: str


@pytest.fixture
def small_tablespace() -> Iterator[SmallTablespace]:
    """A tmpfs owned by the PostgreSQL server's user, a tablespace on it, and a database
    of this test's own in that tablespace; all dropped and unmounted afterwards."""
    url = make_url(PG_ADMIN_URL)
    if url.host not in (None, "127.0.0.1", "localhost", "::1"):
        pytest.skip(f"PostgreSQL at {url.host} is not on this machine: no tablespace here")
    try:
        owner = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres user on this machine to own the tablespace's directory")
    # Under /tmp rather than tmp_path: the server's user must reach the directory, and
    # pytest's base directory is root's alone.
    mount_point = Path(tempfile.mkdtemp(prefix="carevault-pgspace-"))
    options = f"size={PG_SIZE_MB}m,mode=0700,uid={owner.pw_uid},gid={owner.pw_gid}"
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        mount_point.rmdir()
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    suffix = f"{os.getpid()}_{secrets.token_hex(4)}"
    space, database = f"carevault_full_{suffix}", f"carevault_full_{suffix}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            try:
                connection.execute(text(f"CREATE TABLESPACE \"{space}\" LOCATION '{mount_point}'"))
            except DBAPIError as error:
                pytest.skip(f"PostgreSQL cannot make a tablespace here: {error.orig}")
            try:
                connection.execute(text(f'CREATE DATABASE "{database}" TABLESPACE "{space}"'))
                # PostgreSQL 15 copies the catalogue through shared buffers (WAL_LOG):
                # pages the tmpfs has not given space to yet. Once this test fills it,
                # whichever backend evicts one of them fails to write it, and another
                # test's COPY failed with DiskFull naming this database's relation
                # (pg_tblspc/…/2838). Written out now, they have their space.
                connection.execute(text("CHECKPOINT"))
                yield SmallTablespace(
                    mount_point, url.set(database=database).render_as_string(hide_password=False)
                )
            finally:
                connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": database},
                )
                connection.execute(text(f'DROP DATABASE IF EXISTS "{database}"'))
                connection.execute(text(f'DROP TABLESPACE IF EXISTS "{space}"'))
    finally:
        admin.dispose()
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
        shutil.rmtree(mount_point, ignore_errors=True)


def test_a_full_tablespace_on_postgresql_refuses_with_503_and_serves_again(
    small_tablespace: SmallTablespace, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    settings = make_settings(home, small_tablespace.database_url)
    env = environment(home, small_tablespace.database_url, SERVER_SETTINGS)
    cast = prepare_home(settings)
    with running_server(env, tmp_path) as server:
        # Root may write past the server's user into the tablespace's filesystem.
        ballast = fill(small_tablespace.mount_point, leave_bytes=256 * 1024)
        acknowledged = load_until_refused(server, cast.desk_token)
        probes = serves_again_with_everything(server, cast.desk_token, ballast, acknowledged)
    log = server.log.read_text()
    # PostgreSQL's 53100 named as such: by the data write ("storage unavailable: disk
    # full; refusing with 503") or by the ledger's append ("... failed: disk full").
    assert re.search(r"(storage unavailable|entries failed): disk full", log), log[-2000:]
    # Nothing refused is there: the Patients are those acknowledged and the probes.
    services = build_services(settings)
    try:
        with services.engine.connect() as connection:
            stored = connection.execute(
                select(func.count())
                .select_from(resource_head)
                .where(resource_head.c.resource_type == "Patient")
            ).scalar_one()
    finally:
        services.close()
    assert stored == len(acknowledged) + len(probes)
    ledgers_verify(settings, env)


def load_until_refused(server: RunningServer, token: str) -> dict[str, str]:
    """Three clerks register patients until the full disk has refused at least ten; every
    answer is 201 or 503. Returns the acknowledged Patients' ids and family names."""
    acknowledged: dict[str, str] = {}
    statuses: list[int] = []
    lock = threading.Lock()
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
    return acknowledged


def serves_again_with_everything(
    server: RunningServer, token: str, ballast: Path, acknowledged: dict[str, str]
) -> list[str]:
    """Still refused while full; once the ballast is gone, writes are taken again and
    every acknowledged Patient reads back. Returns the ids the probes created."""
    headers = {"authorization": f"Bearer {token}", "content-type": "application/fhir+json"}
    probes: list[str] = []

    def probe() -> bool:
        response = client.post("/Patient", content=json.dumps({"resourceType": "Patient"}))
        if response.status_code == 201:
            probes.append(response.json()["id"])
        return response.status_code == 201

    with httpx.Client(base_url=server.fhir, headers=headers, timeout=30) as client:
        # Space inside the pages can come back while the disk stays full (PostgreSQL's
        # autovacuum prunes the refused rows' tuples), so a write may still fit now and
        # then; the disk being full must still refuse within a few. What fits is
        # acknowledged like any other write.
        refused = None
        for n in range(20):
            family = f"Still{n}"
            body = {"resourceType": "Patient", "name": [{"family": family, "text": "x" * 200}]}
            answer = client.post("/Patient", content=json.dumps(body))
            if answer.status_code == 503:
                refused = answer
                break
            assert answer.status_code == 201, answer.text
            acknowledged[answer.json()["id"]] = family
        assert refused is not None, "twenty writes taken while the disk was full"
        assert "storage unavailable" in refused.text or "ledger" in refused.text
        ballast.unlink()
        assert wait_until(probe, 30)
        for resource_id, family in acknowledged.items():
            read = client.get(f"/Patient/{resource_id}")
            assert read.status_code == 200
            assert read.json()["name"][0]["family"] == family
    return probes


def ledgers_verify(settings: Settings, env: dict[str, str]) -> None:
    services = build_services(settings)
    try:
        for ledger in services.ledgers():
            report = ledger.verify()
            assert report.ok, report.problems
    finally:
        services.close()
    verified = run_cli(env, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
