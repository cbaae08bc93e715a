"""``carevault sim``: checking scenario files, refusing a home seeded otherwise, evaluating."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carevault.cli import app

runner = CliRunner()


def test_check_names_the_bad_field_and_fails(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[scenario]\nname = "x"\ndescription = "y"\nkind = "gate"\n'
        '[who]\naccount = "stolen"\nrole = "nurse"\n[when]\ndays = [1]\n'
        '[what]\nper_hour = "lots"\n'
    )
    result = runner.invoke(app, ["sim", "check", "--scenario", str(bad)])
    assert result.exit_code == 1
    assert "bad.toml: [what] per_hour: expected an integer, got 'lots'" in result.output
    shipped = runner.invoke(app, ["sim", "check"])
    assert shipped.exit_code == 0 and shipped.output.count("ok  ") >= 7


def test_evaluate_says_when_no_detection_engine_is_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An installation without carevault.detect (this one has it).
    monkeypatch.setattr("carevault.sim.detection.engine_installed", lambda: False)
    home = tmp_path / "home"
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "ground-truth.json").write_text(json.dumps({"run": {}, "scenarios": []}))
    (folder / "run.json").write_text(json.dumps({"start": "2026-03-02", "days": 7,
                                                 "clinics": 8}))  # fmt: skip
    result = runner.invoke(app, ["sim", "evaluate", "--home", str(home), "--out", str(folder)])
    assert result.exit_code == 3
    assert "no detection engine is installed" in result.output
    alerts = tmp_path / "alerts.json"
    alerts.write_text("[]")
    scored = runner.invoke(
        app,
        [
            "sim",
            "evaluate",
            "--home",
            str(home),
            "--out",
            str(folder),
            "--alerts",
            str(alerts),
            "--json",
        ],  # fmt: skip
    )
    assert scored.exit_code == 0, scored.output
    card = json.loads(scored.output)
    assert card["alerts"] == 0 and card["false_alerts_per_clinic_week"] == 0.0
    assert (folder / "scorecard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_without_a_run_says_so(tmp_path: Path) -> None:
    result = runner.invoke(app, ["sim", "evaluate", "--home", str(tmp_path / "home")])
    assert result.exit_code == 2 and "run 'carevault sim run' first" in result.output
