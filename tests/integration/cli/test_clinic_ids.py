"""A clinic named by something other than its Organization id (integrator round 60): an
app registered with ``--clinic "Kowloon Tong Clinic"`` (the name the demo's sign-in list
prints) was stored with an id no patient has, and its export completed with no files,
nothing said. ``client add`` and ``staff add`` now tell which clinics no Organization
record held names (not a refusal: staff may be set up before the directory is loaded)."""

from __future__ import annotations

import json
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


def _an_organization_imported(env: dict[str, str]) -> str:
    bundle = BUNDLES[0]
    result = invoke_cli(env, "import", str(bundle), "--quiet")
    assert result.returncode == 0, result.stderr
    entries = json.loads(bundle.read_text(encoding="utf-8"))["entry"]
    return str(
        next(
            e["resource"]["id"] for e in entries if e["resource"]["resourceType"] == "Organization"
        )
    )


def test_a_clinic_no_organization_names_is_told_when_an_app_is_added(
    env: dict[str, str],
) -> None:
    held = _an_organization_imported(env)
    result = invoke_cli(
        env, "client", "add", "reports", "--name", "Reports", "--confidential",
        "--scope", "system/*.read", "--clinic", held, "--clinic", "Kowloon Tong Clinic",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("added client reports (confidential)")
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: no Organization/Kowloon Tong Clinic is held: a clinic is named by its "
        "Organization id, and this one reaches no patient until the directory holds it"
    ]


def test_a_clinic_an_organization_names_is_added_without_a_word(env: dict[str, str]) -> None:
    held = _an_organization_imported(env)
    result = invoke_cli(
        env, "client", "add", "reports", "--name", "Reports", "--confidential",
        "--scope", "system/*.read", "--clinic", held,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr


def test_a_staff_member_at_a_clinic_no_organization_names_is_told(env: dict[str, str]) -> None:
    result = invoke_cli(
        env, "staff", "add", "mei", "--name", "Mei", "--role", "nurse",
        "--clinic", "clinic-tko", "--password-stdin",
        input="correct horse battery staple 42\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "added mei (nurse)" in result.stdout
    assert "warning: no Organization/clinic-tko is held" in result.stderr
