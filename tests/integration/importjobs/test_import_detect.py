"""An integration client writing far more than usual through ``$import`` is abnormal as
a bulk read is: the ``client-writes`` detector raises an alert (``carevault alerts list
--json``), and the containment policy's response reaches the client's job."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carevault.cli import app
from carevault.config import Settings
from carevault.importjobs.model import Status
from carevault.ledger.events import Tag
from tests.conftest import make_settings
from tests.integration.export.conftest import MINE, patient
from tests.integration.importjobs.conftest import Clinic
from tests.integration.importjobs.test_import_api import ndjson

pytestmark = pytest.mark.postgres

#: Records a client may write in an hour before an alert, in these tests.
FLOOR = 10


@pytest.fixture
def settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    url = request.getfixturevalue("pg_schema") if backend == "postgres" else None
    return make_settings(tmp_path / "home", url, detect_client_writes_per_hour=FLOOR)


def cli_alerts(clinic: Clinic, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    settings = clinic.services.settings
    monkeypatch.setenv("CAREVAULT_ENVIRONMENT", "test")
    monkeypatch.setenv("CAREVAULT_CHECKPOINT_SECONDS", "0")
    monkeypatch.setenv("CAREVAULT_DETECT_CLIENT_WRITES_PER_HOUR", str(FLOOR))
    if settings.database_url:
        monkeypatch.setenv("CAREVAULT_DATABASE_URL", settings.database_url)
    listed = CliRunner().invoke(app, ["alerts", "list", "--json", "--home", str(settings.home)])
    assert listed.exit_code == 0, listed.output
    found: list[dict[str, object]] = json.loads(listed.output)
    return found


def test_an_import_past_the_clients_write_limit_raises_an_alert_and_stops_its_job(
    clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    imports = clinic.imports
    imports.settings = replace(imports.settings, batch_lines=FLOOR)
    token = clinic.client("importer")
    body = ndjson(*(patient(f"w{n}", MINE, f"Fam{n}") for n in range(4 * FLOOR)))
    job_id = clinic.kick_off(token, body)
    assert clinic.work(max_batches=2) == 2  # twice the limit written

    alerts = cli_alerts(clinic, monkeypatch)

    [alert] = [a for a in alerts if a["detector"] == "client-writes"]
    assert alert["client"] == "importer" and alert["severity"] == "high"
    assert f"wrote {2 * FLOOR} records in one hour" in str(alert["explanation"])
    # The policy for a high alert on a client is to revoke it: its job stops before its
    # next batch, and what was written stays written.
    assert alert["action"] == "suspend"
    clinic.services.containment.refresh()
    clinic.work()
    job = imports.job(job_id)
    assert job.status is Status.FAILED
    assert job.error is not None and "client app revoked" in job.error
    [stopped] = clinic.events(Tag.IMPORT_STOPPED, job_id)
    assert stopped.detail["accepted"] == 2 * FLOOR


def test_an_import_within_the_limit_raises_nothing(
    clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = clinic.client("importer")
    job_id = clinic.kick_off(token, ndjson(*(patient(f"w{n}", MINE, "Ho") for n in range(FLOOR))))
    clinic.work()
    assert clinic.imports.job(job_id).status is Status.COMPLETED
    assert [a for a in cli_alerts(clinic, monkeypatch) if a["detector"] == "client-writes"] == []
