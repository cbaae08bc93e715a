"""Integrator round 70, the operator's first production install, by the docs: production
refuses to start without a witness outside the host, and the witness needs the ledgers'
verifier keys to start, which `carevault audit vkey` printed only from an initialised
data directory, which production would not make without the witness: a circle.
`carevault audit log-keys` makes the ledger signing key (only that) and prints the
keys; `init` then uses that same key.

And the operator's log shipper, with ``CAREVAULT_LOG_FORMAT=json``: every line
`carevault serve` logs is one JSON object, the detection process's and the
supervisor's included (a restart of the detectors was a bare red line)."""

from __future__ import annotations

import json
import os
import signal
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carevault.cli import app
from carevault.config import Settings
from tests.integration.cli.test_detector import detector_of, waited
from tests.support.server import running_server
from tests.support.template import served_staff

runner = CliRunner()


def test_production_prints_the_ledgers_keys_for_the_witness_before_the_first_init(
    pg_schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    for name, value in (
        ("ENVIRONMENT", "production"),
        ("HOME", str(home)),
        ("DATABASE_URL", pg_schema),
        ("PUBLIC_BASE_URL", "https://ehr.example.hk"),
        ("LEDGER_ORIGIN", "ehr.example.hk"),
        ("ARGON2_MEMORY_KIB", "8192"),
        ("ARGON2_TIME_COST", "1"),
    ):
        monkeypatch.setenv(f"CAREVAULT_{name}", value)
    monkeypatch.delenv("CAREVAULT_WITNESS_URL", raising=False)
    monkeypatch.delenv("CAREVAULT_WITNESS_DIR", raising=False)
    refused = runner.invoke(app, ["init"])
    assert refused.exit_code == 2 and "witness" in refused.output
    printed = runner.invoke(app, ["audit", "log-keys"])
    assert printed.exit_code == 0, printed.output
    keys = dict(line.split(": ", 1) for line in printed.output.splitlines())
    assert set(keys) == {"audit", "unwrap"}
    assert keys["audit"].startswith("ehr.example.hk/audit+")
    assert keys["unwrap"].startswith("ehr.example.hk/unwrap+")
    signing = home / "keys" / "ledger-signing.pem"
    assert stat.S_IMODE(signing.stat().st_mode) == 0o600
    assert stat.S_IMODE(signing.parent.stat().st_mode) & 0o077 == 0
    # Nothing else is made: no database schema, no other key.
    assert sorted(path.name for path in (home / "keys").iterdir()) == ["ledger-signing.pem"]
    again = runner.invoke(app, ["audit", "log-keys"])
    assert again.output == printed.output
    # With the witness set (a directory on another host's mount here), init and the
    # ledger sign with the key the witness was given.
    monkeypatch.setenv("CAREVAULT_WITNESS_DIR", str(tmp_path / "witness-mount"))
    assert runner.invoke(app, ["init"]).exit_code == 0
    vkeys = runner.invoke(app, ["audit", "vkey"])
    assert vkeys.exit_code == 0, vkeys.output
    assert f"audit: {keys['audit']}" in vkeys.output
    assert f"unwrap: {keys['unwrap']}" in vkeys.output


#: What `carevault serve` and `carevault detect` print on standard output, which the
#: test's server log shares with standard error.
STANDARD_OUTPUT = ("CareVault FHIR server: ", "detectors running (process ")


@pytest.mark.e2e
def test_a_served_home_logs_json_lines_the_detectors_restart_included(
    settings: Settings, tmp_path: Path
) -> None:
    env = {**served_staff(settings), "CAREVAULT_LOG_FORMAT": "json"}
    with running_server(env, tmp_path) as server:
        first = waited(lambda: detector_of(server))
        os.kill(first, signal.SIGKILL)
        waited(lambda: pid if (pid := detector_of(server)) not in (None, first) else None)
        waited(lambda: "starting it again" in server.log.read_text())
    lines = [line for line in server.log.read_text().splitlines() if line.strip()]
    logged = [json.loads(line) for line in lines if not line.startswith(STANDARD_OUTPUT)]
    assert {"time", "level", "logger", "process", "message"} <= set(logged[0])
    (restart,) = [line for line in logged if "starting it again" in line["message"]]
    assert (restart["level"], restart["logger"]) == ("ERROR", "carevault.serve")
    assert any(line["message"].startswith("Started server process") for line in logged)
