"""Adversary round 59, the bulk doors: an insider who reads the server's log learns what
an ``$import`` carried when one of its batches fails (SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from carevault.export.worker import JobThread
from carevault.importjobs.model import Status
from carevault.importjobs.worker import ImportWorker
from tests.integration.export.conftest import MINE, patient
from tests.integration.importjobs.conftest import Clinic
from tests.integration.importjobs.test_import_api import ndjson

pytestmark = pytest.mark.postgres


def test_a_failing_import_batch_leaves_no_record_in_the_servers_log(
    clinic: Clinic, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A batch that fails (not a refusal of one record) is retried by the worker thread
    of the server, which logged the failure with its traceback and message: the message
    may quote the record (the job's own error names only the failure's kind for that
    reason), so the log an operator or a log shipper reads held the patient's name. The
    thread now logs the failure's kind and where it was raised, as every server logger
    does (``logsafe``)."""
    token = clinic.client("importer")
    job_id = clinic.kick_off(token, ndjson(patient("p1", MINE, "Zephyrine")))

    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("the store quoted Zephyrine")

    monkeypatch.setattr(clinic.services.gate, "write", broken)
    thread = JobThread(ImportWorker(clinic.imports, "test-worker"), 0.01, "import")
    with caplog.at_level(logging.DEBUG):
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while clinic.imports.job(job_id).status is not Status.FAILED:
                assert time.monotonic() < deadline, "the job was not stopped"
                time.sleep(0.05)
        finally:
            thread.stop()
    failures = [r for r in caplog.records if "a batch failed" in r.getMessage()]
    assert failures, "the failures were not logged at all"
    formatter = logging.Formatter()
    logged = "\n".join(formatter.format(record) for record in caplog.records)
    assert "Zephyrine" not in logged
    # What an operator needs to find the fault is still there: its kind and place.
    assert all("RuntimeError at " in r.getMessage() for r in failures)
