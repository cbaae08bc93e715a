"""The restore drill: back up while writes go on, restore into a fresh directory, find
every acknowledged resource and every ledger entry, and let the witness catch an older
backup passed off as the current one. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from carevault.backup.manifest import BackupInvalid
from carevault.backup.service import restore_backup, take_backup
from carevault.bootstrap import Services, build_services
from carevault.config import Settings
from carevault.db import temporary_database
from carevault.gate import Caller
from tests.conftest import PG_ADMIN_URL, make_settings
from tests.support.server import environment, run_cli

pytestmark = pytest.mark.e2e

SYSTEM = Caller(principal="system:test")
BASE = "http://127.0.0.1/fhir"


class Load:
    """Writers creating patients through the FHIR interactions until stopped; what each
    was told (201 and an id) is kept in order."""

    def __init__(self, services: Services, writers: int = 2) -> None:
        self.services = services
        self.acknowledged: dict[str, str] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._write, args=(n,)) for n in range(writers)]

    def _write(self, worker: int) -> None:
        n = 0
        while not self.stop.is_set():
            family = f"Drill{worker}x{n}"
            body = {"resourceType": "Patient", "name": [{"family": family}]}
            response = self.services.fhir.create(
                SYSTEM, "Patient", json.dumps(body).encode(), BASE, prefer=None
            )
            assert response.status == 201 and response.body is not None
            with self.lock:
                self.acknowledged[json.loads(response.body)["id"]] = family
            n += 1
            # A steady clinic's pace rather than a spin: the backup shares two cores.
            self.stop.wait(0.02)

    def snapshot(self) -> dict[str, str]:
        with self.lock:
            return dict(self.acknowledged)

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + 60
        while len(self.acknowledged) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.acknowledged) >= count

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


@contextmanager
def restore_target(settings: Settings) -> Iterator[str | None]:
    """Where a restore goes: nothing for SQLite (the new home holds the files), a new
    PostgreSQL database with the same schema name for PostgreSQL."""
    if settings.is_sqlite:
        yield None
        return
    schema_option = make_url(settings.resolved_database_url).query["options"]
    with temporary_database(PG_ADMIN_URL, "carevault_restore") as url:
        yield (
            make_url(url)
            .update_query_dict({"options": schema_option})
            .render_as_string(hide_password=False)
        )


def test_a_backup_taken_under_load_restores_whole_and_an_older_one_is_caught(
    services: Services, settings: Settings, tmp_path: Path
) -> None:
    witness = settings.home / "witness"
    env = environment(settings.home, settings.database_url)
    with Load(services) as load:
        load.wait_for(10)
        take_backup(settings, tmp_path / "older", None, "cli:test")
        load.wait_for(len(load.acknowledged) + 10)
        before_latest = load.snapshot()
        latest = run_cli(env, "backup", str(tmp_path / "latest"))
        assert latest.returncode == 0, latest.stderr
        load.wait_for(len(before_latest) + 10)
    assert "cosigned by carevault.local/witness" in latest.stdout
    manifest = json.loads((tmp_path / "latest" / "manifest.json").read_text())
    backed_up = manifest["ledgers"]["audit"]["size"]
    live_entries = [data for _, data in services.audit_ledger.store.entries()]
    assert len(live_entries) > backed_up

    with restore_target(settings) as url:
        home = tmp_path / "restored"
        restored_env = environment(home, url, {"CAREVAULT_WITNESS_DIR": str(witness)})
        done = run_cli(restored_env, "restore", str(tmp_path / "latest"), "--home", str(home))
        assert done.returncode == 0, done.stdout + done.stderr
        assert "audit: OK" in done.stdout and "unwrap: OK" in done.stdout
        restored = build_services(make_settings(home, url, fresh=True, witness_dir=witness))
        try:
            entries = [data for _, data in restored.audit_ledger.store.entries()]
            for resource_id, family in before_latest.items():
                response = restored.fhir.read(SYSTEM, "Patient", resource_id, BASE)
                assert response.body is not None
                assert json.loads(response.body)["name"][0]["family"] == family
        finally:
            restored.close()
        # Every entry the backup holds is the live ledger's, in the same place; after them
        # come only what the restore itself recorded.
        assert entries[:backed_up] == live_entries[:backed_up]
        tags = [json.loads(data)["tag"] for data in entries[backed_up:]]
        assert set(tags) <= {"admin:data:restored", "audit:ledger:verified"}, tags

    with restore_target(settings) as url:
        passed_off = restore_backup(
            tmp_path / "older",
            make_settings(tmp_path / "passed-off", url, fresh=True, witness_dir=witness),
            None,
            "cli:test",
        )
        assert not passed_off.ok
        problems = [problem for report in passed_off.reports for problem in report.problems]
        assert any("rolled back or truncated" in problem for problem in problems), problems


def test_a_backup_whose_files_were_altered_is_refused(
    services: Services, settings: Settings, tmp_path: Path
) -> None:
    take_backup(settings, tmp_path / "b", tmp_path / "k", "cli:test")
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    data_file = tmp_path / "b" / sorted(manifest["files"])[0]
    damaged = bytearray(data_file.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    data_file.write_bytes(bytes(damaged))
    home = tmp_path / "restored"
    with pytest.raises(BackupInvalid, match="does not match its digest"):
        restore_backup(tmp_path / "b", make_settings(home, fresh=True), tmp_path / "k", "cli:test")
    assert not home.exists()
