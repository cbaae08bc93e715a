"""What outside scripts rely on when they drive ``carevault alerts list --json`` and
``carevault incident declare|scope``: one shape of time with its zone, errors as one
line on standard error with an exit status that tells them apart, and a README that
says all of it."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
from sqlalchemy import insert
from typer.testing import CliRunner

from carevault.cli import app
from carevault.db import write_transaction
from carevault.detect.tables import detect_alert
from carevault.incidents.model import Status
from tests.support.cli_home import cli_services

runner = CliRunner()
README = Path(__file__).parents[3] / "README.md"
#: One shape for every alert time: a script's strptime("%Y-%m-%dT%H:%M:%S.%f%z") reads it.
ALERT_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    services = cli_services(tmp_path, monkeypatch)
    try:
        with write_transaction(services.engine) as connection:
            for n, raised_us in enumerate((1_767_226_000_000_000, 1_767_226_000_123_456)):
                connection.execute(
                    insert(detect_alert).values(
                        dedup_key=f"volume|thief|{n}",
                        case_key="case:thief",
                        detector="volume",
                        severity="high",
                        account="thief",
                        source_address="203.0.113.9",
                        patient_count=2,
                        patients='["ps1","ps2"]',
                        raised_us=raised_us,
                        updated_us=raised_us,
                        status="open",
                        explanation="many",
                    )  # fmt: skip
                )
        return services.settings.home
    finally:
        services.close()


def test_every_alert_time_has_one_shape_with_its_zone(home: Path) -> None:
    """An alert raised on a whole second (the simulated month's clock raises many) was
    printed without its fraction, ``2026-01-01T00:06:40+00:00``, and a script reading
    the others' ``.123456+00:00`` with one format failed on it."""
    result = runner.invoke(app, ["alerts", "list", "--json", "--home", str(home)])
    assert result.exit_code == 0, result.output
    alerts = json.loads(result.stdout)
    assert [alert["raised_at"] for alert in alerts] == [
        "2026-01-01T00:06:40.000000+00:00",
        "2026-01-01T00:06:40.123456+00:00",
    ]
    assert all(ALERT_TIME.match(alert["raised_at"]) for alert in alerts)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    "command",
    [["alerts", "list", "--json"], ["incident", "scope", "1", "--format", "json"],
     ["incident", "declare", "--title", "t", "--account", "thief", "--since", "2026-01-01"]],
)  # fmt: skip
def test_a_database_that_cannot_be_reached_is_one_line_and_exit_3(
    home: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """A script must tell "no incident 42" (exit 1: do not retry) from "the database is
    down" (retry later): the latter was a 500-line traceback with exit 1."""
    url = f"postgresql+psycopg://carevault@127.0.0.1:{_closed_port()}/carevault"
    monkeypatch.setenv("CAREVAULT_DATABASE_URL", url)
    result = runner.invoke(app, [*command, "--home", str(home)])
    assert result.exit_code == 3, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("the database cannot be reached or is busy: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_the_readme_says_what_scripts_read(home: Path) -> None:
    """Every field of ``alerts list --json`` and of the scope document's top level, the
    time formats and the exit statuses are in the README, where the integrator looks."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## For scripts", 1)[1].split("\n## ", 1)[0]
    result = runner.invoke(app, ["alerts", "list", "--json", "--home", str(home)])
    for field in json.loads(result.stdout)[0]:
        assert f"`{field}`" in section, field
    for field in ("incident", "tiers", "changed", "registered", "registered_at", "ended_at",
                  "counts", "people", "notifiable", "by_category", "by_clinic", "by_day",
                  "evidence", "checkpoint", "pseudonym"):  # fmt: skip
        assert f"`{field}`" in section, field
    for status in (*(s.value for s in Status), "exit 0", "exit 1", "exit 2", "exit 3"):
        assert status in section, status
    assert "+00:00" in section and ".000Z" in section
