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


@pytest.mark.parametrize(
    ("command", "variable", "told"),
    [
        ("verify", "CAREVAULT_SEARCH_MAX_COUNT", "refusing to start: CAREVAULT_SEARCH_MAX_COUNT"),
        # A JSON setting that is no JSON: pydantic-settings names the field.
        ("verify", "CAREVAULT_CLINIC_NAMES", "clinic_names"),
        # ``audit log-keys`` reads its settings unchecked (production's witness cannot
        # exist yet), but not unread: the value typed was printed back.
        ("log-keys", "CAREVAULT_SMTP_PORT", "refusing to start: CAREVAULT_SMTP_PORT"),
    ],
)
def test_the_cli_refuses_to_start_with_a_setting_of_the_wrong_kind(
    tmp_path: Path, command: str, variable: str, told: str
) -> None:
    """A PIN or password typed into the wrong variable is never printed back: the
    command stops, exit 2, naming the variable and what is wrong, with no traceback."""
    result = CliRunner().invoke(
        app, ["audit", command, "--home", str(tmp_path)], env={variable: "pin-4711-secret"}
    )
    assert result.exit_code == 2, result.output
    assert "refusing to start" in result.output and told in result.output
    assert "4711" not in result.output
    assert "Traceback" not in result.output
