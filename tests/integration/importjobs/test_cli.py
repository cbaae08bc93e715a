"""``carevault import-jobs``: every job, whose, how far it got."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carevault.cli import app
from tests.integration.export.conftest import MINE, patient
from tests.integration.importjobs.conftest import Clinic
from tests.integration.importjobs.test_import_api import ndjson

pytestmark = pytest.mark.postgres

runner = CliRunner()


def test_import_jobs_lists_each_job_with_its_counts(
    clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = clinic.services.settings
    monkeypatch.setenv("CAREVAULT_ENVIRONMENT", "test")
    monkeypatch.setenv("CAREVAULT_CHECKPOINT_SECONDS", "0")
    if settings.database_url:
        monkeypatch.setenv("CAREVAULT_DATABASE_URL", settings.database_url)
    token = clinic.client("importer")
    job_id = clinic.kick_off(token, ndjson(patient("p1", MINE, "Chan")) + b"{}\n")
    clinic.work()
    result = runner.invoke(app, ["import-jobs", "--json", "--home", str(settings.home)])
    assert result.exit_code == 0, result.output
    [job] = json.loads(result.output)
    assert job["id"] == job_id and job["status"] == "completed"
    assert (job["accepted"], job["rejected"], job["lines_done"]) == (1, 1, 2)
    listed = runner.invoke(app, ["import-jobs", "--home", str(settings.home)])
    assert listed.exit_code == 0 and job_id in listed.output

    # Once its report has expired, the job is still listed, as expired.
    clinic.imports.settings = replace(clinic.imports.settings, keep_us=0)
    assert clinic.imports.expire() == 1
    expired = runner.invoke(
        app, ["import-jobs", "--json", "--status", "expired", "--home", str(settings.home)]
    )
    assert expired.exit_code == 0, expired.output
    assert [job["id"] for job in json.loads(expired.output)] == [job_id]


def test_an_unknown_status_is_refused_with_the_choices(tmp_path: Path) -> None:
    result = runner.invoke(app, ["import-jobs", "--status", "bogus", "--home", str(tmp_path)])
    assert result.exit_code == 2
    assert "queued" in result.output and "Traceback" not in result.output
