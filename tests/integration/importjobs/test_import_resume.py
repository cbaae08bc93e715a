"""An ``$import`` whose worker process is killed (SIGKILL) at random points and taken
over by another: every line is written once, as the client, refusals reported once,
and the ledgers verify."""

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
from sqlalchemy import select

from carevault.bulk.sources import bundles_to_ndjson, read_items
from carevault.bulk.tables import bulk_import_file
from carevault.config import Settings
from carevault.importjobs.model import Status
from carevault.ledger.events import Tag
from carevault.vault.tables import resource_head
from tests.integration.export.conftest import OTHER, patient
from tests.integration.importjobs.conftest import Clinic
from tests.support.server import environment
from tests.support.synthea import BUNDLES

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

#: A worker in a process of its own, as a server process runs it.
CHILD = """
from carevault.bootstrap import build_services
from carevault.config import load_settings
from carevault.importjobs.worker import ImportWorker

services = build_services(load_settings())
assert services.imports is not None
ImportWorker(services.imports).run_once()
services.close()
"""
LEASE_SECONDS = 1.0


def _lines_done(clinic: Clinic, digest: str) -> int:
    with clinic.services.engine.connect() as connection:
        done = connection.execute(
            select(bulk_import_file.c.items_done).where(bulk_import_file.c.file_sha256 == digest)
        ).scalar()
    return int(done or 0)


def test_an_import_whose_worker_is_killed_writes_every_line_once(
    clinic: Clinic, settings: Settings, tmp_path: Path
) -> None:
    files = bundles_to_ndjson(BUNDLES, tmp_path / "ndjson")
    lines = [line for path in files for line in path.read_bytes().splitlines()]
    # A line the client may not write (a patient of another clinic) splits its batch.
    refused_at = len(lines) // 2
    lines.insert(refused_at, json.dumps(patient("p-theirs", OTHER, "Ng")).encode())
    body = b"\n".join(lines) + b"\n"
    sent = {
        (item.resource["resourceType"], item.resource["id"])
        for path in files
        for item in read_items(path, "x")
        if item.resource
    }
    total = len(lines)
    token = clinic.client("importer")
    job_id = clinic.kick_off(token, body)
    digest = clinic.imports.job(job_id).digest

    env = environment(
        settings.home,
        settings.database_url,
        {
            "CAREVAULT_IMPORT_BATCH_LINES": "20",
            "CAREVAULT_EXPORT_LEASE_SECONDS": str(LEASE_SECONDS),
        },
    )
    chooser = random.Random(15)
    kills = 0
    for threshold in sorted(chooser.sample(range(20, total - 20), 3)):
        process = subprocess.Popen(  # noqa: S603 - this interpreter, a fixed script
            [sys.executable, "-c", CHILD],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 300
        while process.poll() is None and time.monotonic() < deadline:
            if _lines_done(clinic, digest) >= threshold:
                # A moment later, so that some kills land inside a transaction.
                time.sleep(chooser.random() * 0.3)
                process.send_signal(signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.02)
        process.wait(timeout=60)
        # The dead process's lease runs out before another takes the job over.
        time.sleep(LEASE_SECONDS + 0.2)
    assert kills >= 2

    clinic.work()

    job = clinic.imports.job(job_id)
    assert job.status is Status.COMPLETED
    report = clinic.imports.report(job)
    assert (report.accepted, report.rejected) == (total - 1, 1)
    assert [line for line, _ in report.rejections] == [refused_at + 1]
    with clinic.services.engine.connect() as connection:
        heads = connection.execute(
            select(
                resource_head.c.resource_type,
                resource_head.c.resource_id,
                resource_head.c.version_id,
            )
        ).all()
    written = {(row.resource_type, row.resource_id): row.version_id for row in heads}
    assert sent <= set(written)
    assert {written[key] for key in sent} == {1}
    assert ("Patient", "p-theirs") not in written
    created = Counter(
        (event.resource_type, event.resource_id)
        for event in clinic.events(Tag.FHIR_CREATE) + clinic.events(Tag.FHIR_UPDATE)
        if event.principal == "client:importer" and event.outcome.value == "success"
    )
    assert set(created) == sent
    assert set(created.values()) == {1}
    for ledger in clinic.services.ledgers():
        verified = ledger.verify()
        assert verified.ok, verified.problems
