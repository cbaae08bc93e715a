"""``carevault import`` killed (SIGKILL) at random points and run again: every record is
there once, at version 1, named once in the audit ledger, refusals reported once, and
both ledgers verify."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from carevault.bootstrap import build_services
from carevault.bulk.journal import Journal
from carevault.bulk.sources import bundles_to_ndjson
from carevault.bulk.tables import bulk_import_file, bulk_import_rejection
from carevault.config import Settings
from carevault.db import make_engine
from carevault.vault.tables import resource_head
from tests.integration.bulk.test_import import BUNDLES
from tests.support.server import environment, run_cli

pytestmark = pytest.mark.e2e

ORPHANS = 3


def _source(folder: Path) -> tuple[list[Path], int]:
    """The Synthea bundles as NDJSON per type, with records of missing patients among
    the observations (they make a batch split on the way)."""
    files = bundles_to_ndjson(BUNDLES, folder)
    observations = folder / "Observation.ndjson"
    lines = observations.read_bytes().splitlines()
    for n in range(ORPHANS):
        orphan = json.loads(lines[0])
        orphan["id"] = f"orphan-{n}"
        orphan["subject"] = {"reference": f"Patient/missing-{n}"}
        lines.insert(len(lines) * (n + 1) // (ORPHANS + 1), json.dumps(orphan).encode())
    observations.write_bytes(b"\n".join(lines) + b"\n")
    total = sum(len(path.read_bytes().splitlines()) for path in files)
    return files, total


def _items_done(settings: Settings) -> int:
    engine = make_engine(settings.resolved_database_url)
    try:
        with engine.connect() as connection:
            done = connection.execute(select(func.sum(bulk_import_file.c.items_done))).scalar()
    except Exception:  # noqa: BLE001 - the table may not exist yet
        return 0
    finally:
        engine.dispose()
    return int(done or 0)


def test_an_import_killed_at_random_points_loads_everything_once(
    settings: Settings, tmp_path: Path
) -> None:
    files, total = _source(tmp_path / "ndjson")
    env = environment(settings.home, settings.database_url)
    command = [sys.executable, "-m", "carevault", "import", str(tmp_path / "ndjson")]
    options = ["--batch-size", "60", "--workers", "0", "--quiet"]
    initialised = run_cli(env, "init")
    assert initialised.returncode == 0, initialised.stderr
    chooser = random.Random(15)
    kills = 0
    for threshold in sorted(chooser.sample(range(60, total - 60), 3)):
        process = subprocess.Popen(
            [*command, *options], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 300
        while process.poll() is None and time.monotonic() < deadline:
            if _items_done(settings) >= threshold:
                # A moment later, so that some kills land inside a transaction.
                time.sleep(chooser.random() * 0.3)
                process.send_signal(signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.02)
        process.wait(timeout=60)
    assert kills >= 2
    finished = run_cli(env, "import", str(tmp_path / "ndjson"), *options)
    assert finished.returncode == 0, finished.stderr

    services = build_services(settings)
    try:
        with services.engine.connect() as connection:
            heads = connection.execute(
                select(
                    resource_head.c.resource_type,
                    resource_head.c.resource_id,
                    resource_head.c.version_id,
                )
            ).all()
            digests = connection.execute(
                select(bulk_import_rejection.c.file_sha256).distinct()
            ).scalars()
            journal = Journal(services.engine, services.keys)
            refused = [reason for sha in digests for _, reason in journal.rejections(sha)]
        assert len(heads) == total - ORPHANS
        assert {row.version_id for row in heads} == {1}
        assert len(refused) == ORPHANS
        assert all("Patient/missing-" in reason for reason in refused)
        named = Counter(
            (kind, ident.split("/_history/")[0])
            for _, data in services.audit_ledger.store.entries()
            if (entry := json.loads(data))["tag"] == "fhir:bulk:imported"
            and entry["outcome"] == "success"
            for kind, idents in entry["detail"]["written"].items()
            for ident in idents
        )
        assert set(named) == {(row.resource_type, row.resource_id) for row in heads}
        assert set(named.values()) == {1}
        for ledger in services.ledgers():
            report = ledger.verify()
            assert report.ok, report.problems
    finally:
        services.close()
    assert len(files) > 5
