"""A command pointed at a directory that holds no CareVault data (a mistyped ``--home``)
says so and leaves nothing behind: no new directory, no empty database."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from carevault.cli import app

runner = CliRunner()


@pytest.mark.parametrize("exists", [False, True], ids=["missing", "empty"])
def test_a_mistyped_home_is_refused_and_left_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exists: bool
) -> None:
    monkeypatch.delenv("CAREVAULT_DATABASE_URL", raising=False)
    monkeypatch.delenv("CAREVAULT_KEYS_DATABASE_URL", raising=False)
    home = tmp_path / "carevault-dat"
    if exists:
        home.mkdir()

    result = runner.invoke(app, ["alerts", "list", "--home", str(home)])

    assert result.exit_code == 2, result.output
    assert "is not a CareVault data directory" in result.output
    assert "carevault init" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    if exists:
        assert list(home.iterdir()) == []
    else:
        assert not home.exists()
