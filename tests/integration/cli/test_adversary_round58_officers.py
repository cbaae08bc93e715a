"""Adversary round 58, the operator's shell: ``carevault staff suspend NAME --reinstate``
lifted a suspension that an officer made as containment (``account-suspended``), with no
officer's code, and left the containment on record: the desk read again while the
console, the dashboard and the incident (and the notices' "we stopped the access") said
it was suspended. A containment's suspension is lifted by releasing it
(``carevault contain release ID --officer``); a suspension made on the host still is
lifted on the host."""

from __future__ import annotations

from pathlib import Path

import pyotp
import pytest
from typer.testing import CliRunner

from carevault.cli import app
from carevault.containment.service import Officer
from carevault.containment.state import Mode
from carevault.domain.roles import Role
from tests.support.cli_home import cli_services

runner = CliRunner()
PASSWORD = "correct horse battery staple"


def test_the_host_does_not_lift_a_containments_suspension_off_the_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = cli_services(tmp_path, monkeypatch)
    home = services.settings.home
    try:
        _, secret = services.accounts.add("po1", "Officer", Role.PRIVACY_OFFICER, ["tm"], PASSWORD)
        services.accounts.add("desk1", "Desk", Role.FRONT_DESK, ["tm"], PASSWORD)
        services.accounts.add("desk2", "Desk", Role.FRONT_DESK, ["tm"], PASSWORD)
        started = services.contain.start(
            Officer("po1", pyotp.TOTP(secret).now(), "127.0.0.1"),
            Mode.ACCOUNT_SUSPENDED,
            "desk1",
            "reading past the budget",
        )
    finally:
        services.close()

    refused = runner.invoke(app, ["staff", "suspend", "desk1", "--reinstate", "--home", str(home)])
    assert refused.exit_code == 1, refused.output
    assert f"contain release {started.containment_id}" in refused.output
    # A suspension made on the host is still lifted there.
    made = runner.invoke(app, ["staff", "suspend", "desk2", "--home", str(home)])
    assert made.exit_code == 0, made.output
    lifted = runner.invoke(app, ["staff", "suspend", "desk2", "--reinstate", "--home", str(home)])
    assert lifted.exit_code == 0, lifted.output

    services = cli_services(tmp_path, monkeypatch)
    try:
        desk1, desk2 = services.accounts.find("desk1"), services.accounts.find("desk2")
        assert desk1 is not None and desk1.suspended
        assert desk2 is not None and not desk2.suspended
        assert [item.containment_id for item in services.containment.refresh().active] == [
            started.containment_id
        ]
    finally:
        services.close()
