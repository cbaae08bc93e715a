"""The ``carevault`` command as an outside script drives it (integrator round 59b):
exit statuses that tell a wrong call (2) from a refusal (1), and errors as one line on
standard error, never a traceback (README, "For scripts")."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli_home import cli_services
from tests.support.server import environment, invoke_cli
from tests.support.synthea import BUNDLES


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    services = cli_services(tmp_path, monkeypatch)
    services.close()
    return environment(services.settings.home, None, {"NO_COLOR": "1", "TERM": "dumb"})


@pytest.mark.parametrize(
    "command",
    [
        ["alerts", "show", "abc"],
        ["alerts", "show", "abc", "--json"],
        ["alerts", "show", "1x"],
        ["alerts", "ack", "abc", "--officer", "officer", "--totp", "123456"],
        ["alerts", "dismiss", "abc", "--reason", "r", "--officer", "officer", "--totp", "1"],
    ],
)
def test_an_alert_id_that_is_not_a_number_is_a_wrong_call(
    env: dict[str, str], command: list[str]
) -> None:
    """README: exit 2 for "an id that is not a number". ``alerts show abc`` was exit 1,
    "no alert abc", the status of an alert that is not there, so a script could not tell
    its own bad input from an alert gone; ``incident show abc`` was already 2."""
    result = invoke_cli(env, *command)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_alert_number_that_no_alert_has_is_still_a_refusal(env: dict[str, str]) -> None:
    result = invoke_cli(env, "alerts", "show", "999", "--json")
    assert (result.returncode, result.stdout, result.stderr.strip()) == (1, "", "no alert 999")


@pytest.mark.parametrize(
    "command",
    [
        ["export", "show", "999"],
        ["export", "show", "abc", "--json"],
        ["export", "approve", "999", "--officer", "officer", "--totp", "123456"],
        ["export", "deny", "999", "--reason", "r", "--officer", "officer", "--totp", "1"],
    ],
)
def test_an_export_job_that_is_not_there_is_one_line_not_a_traceback(
    env: dict[str, str], command: list[str]
) -> None:
    """``export show 999`` let ``ExportNotFound`` out: a traceback of the service's code
    on standard error (rich's, in a box), where every other command says one line."""
    result = invoke_cli(env, *command)
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("no export job")
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_import_into_a_pipe_prints_its_result_alone_on_standard_output(
    env: dict[str, str],
) -> None:
    """Rich drew the progress bar on standard output, and into a pipe it printed the
    bar's last frame there (the file's name, a bar of box characters, ``76/76``) before
    the result lines a script reads; the bar is on standard error now, its label escaped
    like any printed name."""
    bundle = BUNDLES[0]
    result = invoke_cli(env, "import", str(bundle))
    assert result.returncode == 0, result.stderr
    assert "\u2501" not in result.stdout
    lines = result.stdout.splitlines()
    assert lines[0] == f"{bundle}: loaded; {lines[0].split('loaded; ')[1]}"
    assert len(lines) == 2
    assert lines[1].split(";")[0].endswith("rejected")
