"""The privacy officer's command line: contain, release, status; refusals recorded."""

from __future__ import annotations

import json

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from tests.support.server import environment, invoke_cli
from tests.support.staff import make_staff


def test_contain_release_and_status_from_the_cli(services: Services) -> None:
    officer = make_staff(services, Role.PRIVACY_OFFICER, ["clinic-a"])
    nurse = make_staff(services, Role.NURSE, ["clinic-a"])
    env = environment(services.settings.home, services.settings.database_url)

    def contain(*args: str) -> tuple[int, str]:
        done = invoke_cli(env, "contain", *args)
        return done.returncode, done.stdout + done.stderr

    code, output = contain(
        "start", "read-only", "--reason", "drill",
        "--officer", nurse.account.username, "--totp", nurse.totp(),
    )  # fmt: skip
    assert code == 1 and "only a privacy officer" in output
    code, output = contain(
        "start", "read-only", "--reason", "drill",
        "--officer", officer.account.username, "--totp", "123456",
    )  # fmt: skip
    assert code == 1 and "fresh TOTP" in output
    code, output = contain(
        "start", "read-only", "--reason", "drill",
        "--officer", officer.account.username, "--totp", officer.totp(),
    )  # fmt: skip
    assert code == 0 and "read-only is ON" in output, output

    status = invoke_cli(env, "status")
    assert status.returncode == 0
    assert "read-only" in status.stdout and "by staff:" in status.stdout
    assert "Ledger audit:" in status.stdout and "Ledger unwrap:" in status.stdout
    # These services run no detectors, and nothing else does: the officer is told.
    assert "no process is judging them now" in status.stdout

    code, output = contain(
        "release", "1", "--reason", "drill over",
        "--officer", officer.account.username, "--totp", officer.totp(),
    )  # fmt: skip
    assert code == 0 and "released" in output
    assert "none active" in invoke_cli(env, "status").stdout
    tags = [json.loads(data)["tag"] for _, data in services.audit_ledger.store.entries()]
    assert tags.count("containment:mode:refused") == 2
    assert tags.count("containment:mode:started") == 1
    assert tags.count("containment:mode:released") == 1
    assert services.audit_ledger.verify().ok
