"""Settings refused at start: by the variable's name and what is wrong, never its value
(a PIN or a password may be the value typed where a number belongs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from carevault.cli import app
from carevault.config import UnsafeConfiguration, load_settings


def test_a_default_page_size_set_above_the_maximum_set_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsafeConfiguration) as refused:
        load_settings(home=tmp_path, search_default_count=50, search_max_count=10)
    assert str(refused.value) == (
        "CAREVAULT_SEARCH_DEFAULT_COUNT (50) is above CAREVAULT_SEARCH_MAX_COUNT (10)"
    )


def test_a_maximum_set_alone_below_the_default_cuts_the_default(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, search_max_count=3)
    assert (settings.search_default_count, settings.search_max_count) == (20, 3)
    # Equal is no contradiction.
    load_settings(home=tmp_path, search_default_count=3, search_max_count=3)


def test_a_setting_of_the_wrong_kind_is_named_and_its_value_is_not(tmp_path: Path) -> None:
    with pytest.raises(UnsafeConfiguration) as refused:
        load_settings(home=tmp_path, search_max_count="pin-4711-secret", smtp_port=0)
    told = str(refused.value)
    assert "CAREVAULT_SEARCH_MAX_COUNT: Input should be a valid integer" in told
    assert "CAREVAULT_SMTP_PORT" in told
    assert "4711" not in told


def test_the_cli_refuses_to_start_with_a_setting_of_the_wrong_kind(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["audit", "verify", "--home", str(tmp_path)],
        env={"CAREVAULT_SEARCH_MAX_COUNT": "pin-4711-secret"},
    )
    assert result.exit_code == 2, result.output
    assert "refusing to start: CAREVAULT_SEARCH_MAX_COUNT" in result.output
    assert "4711" not in result.output
    assert "Traceback" not in result.output


def test_a_json_setting_that_is_no_json_is_refused_by_name(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["audit", "verify", "--home", str(tmp_path)],
        env={"CAREVAULT_CLINIC_NAMES": "notjson-8842secret"},
    )
    assert result.exit_code == 2, result.output
    assert "refusing to start" in result.output and "clinic_names" in result.output
    assert "8842" not in result.output and "Traceback" not in result.output


def test_log_keys_refuses_a_setting_of_the_wrong_kind_by_name(tmp_path: Path) -> None:
    """``audit log-keys`` reads its settings unchecked (production's witness cannot exist
    yet), but not unread: a PIN typed where a number belongs was printed back."""
    result = CliRunner().invoke(
        app,
        ["audit", "log-keys", "--home", str(tmp_path)],
        env={"CAREVAULT_SMTP_PORT": "8842secret"},
    )
    assert result.exit_code == 2, result.output
    assert "refusing to start: CAREVAULT_SMTP_PORT" in result.output
    assert "8842" not in result.output
