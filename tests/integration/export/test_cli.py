"""``carevault export list|show|approve|deny|cancel`` and the status overview."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carevault.cli import app
from carevault.domain.roles import Role
from carevault.export.model import Status
from carevault.ledger.events import AuditEvent, Tag
from tests.integration.access.browser import bearer
from tests.integration.export.conftest import Clinic
from tests.support.staff import make_staff

pytestmark = pytest.mark.postgres

runner = CliRunner()
ASYNC = {"prefer": "respond-async"}


@pytest.fixture
def cli_env(clinic: Clinic, monkeypatch: pytest.MonkeyPatch) -> Clinic:
    settings = clinic.services.settings
    monkeypatch.setenv("CAREVAULT_ENVIRONMENT", "test")
    monkeypatch.setenv("CAREVAULT_CHECKPOINT_SECONDS", "0")
    if settings.database_url:
        monkeypatch.setenv("CAREVAULT_DATABASE_URL", settings.database_url)
    return clinic


def run(clinic: Clinic, *args: str) -> str:
    result = runner.invoke(app, [*args, "--home", str(clinic.services.settings.home)])
    assert result.exit_code == 0, result.output
    return result.output


def kick_off(clinic: Clinic, path: str) -> str:
    token = clinic.client(f"exporter{len(clinic.services.clients.all())}", "system/*.read")
    response = clinic.web.get(path, headers={**bearer(token), **ASYNC})
    assert response.status_code == 202, response.text
    return response.headers["content-location"].rsplit("/", 1)[1]


def test_officers_list_approve_deny_and_cancel_from_the_command_line(cli_env: Clinic) -> None:
    clinic = cli_env
    system_job = kick_off(clinic, "/fhir/$export")
    patient_job = kick_off(clinic, "/fhir/Patient/$export?_type=Patient")
    listed = json.loads(run(clinic, "export", "list", "--json"))
    assert {item["id"]: item["status"] for item in listed} == {
        system_job: "pending",
        patient_job: "pending",
    }
    first, second = clinic.officers
    # A third officer for the other jobs: codes are single-use, and an officer's fourth
    # within half a minute would wait for the next step.
    third = make_staff(clinic.services, Role.PRIVACY_OFFICER, ["clinic-a"])
    one = json.loads(
        run(
            clinic,
            "export",
            "approve",
            patient_job,
            "--officer",
            third.login.username,
            "--totp",
            third.totp(),
            "--json",
        )  # fmt: skip
    )
    assert one["status"] == "approved" and len(one["approvals"]) == 1
    # A two-person export counts only approvals from officers' own signed-in sessions: a
    # typed username and code (which one officer could hold for another) is refused.
    typed = runner.invoke(
        app,
        ["export", "approve", system_job, "--officer", first.login.username,
         "--totp", first.totp(), "--home", str(clinic.services.settings.home)],
    )  # fmt: skip
    assert typed.exit_code == 1 and "own signed-in session" in typed.output
    by_first = clinic.web.post(
        f"/admin/exports/{system_job}/approve", json={"totp": first.totp()}, headers=first.headers
    )
    assert by_first.status_code == 200 and by_first.json()["status"] == "pending"
    again = runner.invoke(
        app,
        ["export", "approve", system_job, "--officer", first.login.username,
         "--totp", first.totp(), "--home", str(clinic.services.settings.home)],
    )  # fmt: skip
    assert again.exit_code == 1 and "second, different privacy officer" in again.output
    by_second = clinic.web.post(
        f"/admin/exports/{system_job}/approve", json={"totp": second.totp()}, headers=second.headers
    )
    assert by_second.status_code == 200 and by_second.json()["status"] == "approved"
    third_job = kick_off(clinic, "/fhir/Group/clinic-a/$export")
    denied = run(clinic, "export", "deny", third_job, "--reason", "not agreed",
                 "--officer", second.login.username, "--totp", second.totp())  # fmt: skip
    assert "denied" in denied
    bad_code = runner.invoke(
        app,
        ["export", "cancel", system_job, "--reason", "x", "--officer", first.login.username,
         "--totp", "000000", "--home", str(clinic.services.settings.home)],
    )  # fmt: skip
    assert bad_code.exit_code == 1

    clinic.work()
    shown = json.loads(run(clinic, "export", "show", system_job, "--json"))
    assert shown["status"] == "completed" and shown["files"]
    status = run(clinic, "status")
    assert "Bulk exports:" in status and system_job in status
    run(clinic, "export", "cancel", system_job, "--reason", "done with it",
        "--officer", second.login.username, "--totp", second.totp())  # fmt: skip
    assert clinic.services.exports is not None
    assert clinic.services.exports.job(system_job).status is Status.CANCELLED
    assert clinic.services.exports.job(third_job).status is Status.DENIED
    assert not clinic.services.exports.files.exists(system_job)


def test_an_unknown_status_is_refused_with_the_choices(tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", "list", "--status", "bogus", "--home", str(tmp_path)])
    assert result.exit_code == 2
    assert "pending" in result.output and "Traceback" not in result.output


def test_a_denials_words_are_sealed_in_its_ledger_entry(cli_env: Clinic) -> None:
    """Why an officer refused an export may name a patient ("the client asked for Mrs
    Chan's file twice"): the ledger keeps it sealed, and it opens to what was typed (stop
    55)."""
    clinic = cli_env
    job = kick_off(clinic, "/fhir/Group/clinic-a/$export")
    officer = clinic.officers[0]
    words = "the client asked for Quillbrook Marzipane's file twice"
    run(clinic, "export", "deny", job, "--reason", words,
        "--officer", officer.login.username, "--totp", officer.totp())  # fmt: skip
    (denied,) = [
        event
        for _, data in clinic.services.audit_ledger.store.entries()
        if (event := AuditEvent.from_canonical(data)).tag is Tag.EXPORT_DENIED
    ]
    assert denied.reason == "denied (the reason sealed in the detail)"
    assert "Marzipane" not in json.dumps(denied.detail)
    assert clinic.services.exports is not None
    assert clinic.services.exports.reason_of(denied) == words
