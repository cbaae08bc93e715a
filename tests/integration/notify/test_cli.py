"""The officer's commands: notify preview|send|status, report pcpd|hipaa|gdpr, the
decision with a fresh TOTP code, and the clocks in ``carevault status``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carevault.domain.roles import Role
from carevault.ledger.events import AuditEvent, Tag
from carevault.notify.decisions import decisions_for
from tests.integration.notify.conftest import Clinic
from tests.support.auth import Login, fresh_code
from tests.support.server import environment, invoke_cli

pytestmark = pytest.mark.postgres


def _env(clinic: Clinic) -> dict[str, str]:
    s = clinic.settings
    return environment(
        s.home,
        s.database_url,
        {
            "CAREVAULT_SMTP_PORT": str(s.smtp_port),
            "CAREVAULT_SMTP_FROM": s.smtp_from,
            "CAREVAULT_SMS_GATEWAY_URL": str(s.sms_gateway_url),
            "CAREVAULT_NOTIFY_JOURNAL_DIR": str(s.notify_journal_dir),
            "CAREVAULT_NOTIFY_LETTERS_DIR": str(s.notify_letters_dir),
            "CAREVAULT_NOTIFY_SITE": "clinics.example.hk",
        },
    )


def officer_and_scope(clinic: Clinic, tmp_path: Path) -> tuple[Login, Path, dict[str, str], str]:
    """A privacy officer (``ada.lau``), the clinic's incident scope written to a file, the
    CLI's environment and the incident's id: what a notify command on the host takes."""
    password = "correct horse battery staple"
    _, secret = clinic.services.accounts.add(
        "ada.lau", "Ada Lau", Role.PRIVACY_OFFICER, [], password
    )
    officer = Login("ada.lau", "privacy_officer", secret, password, frozenset())
    scope_file = tmp_path / "scope.json"
    scope_file.write_text(json.dumps(clinic.scope))
    return officer, scope_file, _env(clinic), clinic.scope["incident"]["id"]


def test_preview_send_status_reports_and_decisions(clinic: Clinic, tmp_path: Path) -> None:
    officer, scope_file, env, incident = officer_and_scope(clinic, tmp_path)

    missing = invoke_cli(env, "notify", "preview", incident)
    assert missing.returncode == 2 and "--scope" in missing.stderr

    preview = invoke_cli(env, "notify", "preview", incident, "--scope", str(scope_file),
                      "--patient", clinic.ids["zh_email"], "--officer", "ada.lau",
                      "--totp", fresh_code(officer))  # fmt: skip
    assert preview.returncode == 0, preview.stderr
    assert "9 people to notify" in preview.stdout and "deceased" in preview.stdout
    assert "閣下" in preview.stdout and clinic.sink.messages == []

    # Notices speak in the group's name: no officer, or no fresh code, sends nothing.
    nobody = invoke_cli(env, "notify", "send", incident, "--scope", str(scope_file))
    assert nobody.returncode == 2 and "--officer" in nobody.stderr
    wrong = invoke_cli(env, "notify", "send", incident, "--scope", str(scope_file),
                    "--officer", "ada.lau", "--totp", "000000")  # fmt: skip
    assert wrong.returncode == 1 and "TOTP" in wrong.stderr
    assert clinic.sink.messages == [] and clinic.sms.messages == []
    sent = invoke_cli(env, "notify", "send", incident, "--scope", str(scope_file),
                   "--officer", "ada.lau", "--totp", fresh_code(officer))  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert "8 notices sent" in sent.stdout
    started = [
        event
        for _, data in clinic.services.audit_ledger.store.entries()
        if (event := AuditEvent.from_canonical(data)).tag is Tag.NOTIFY_JOB_STARTED
    ]
    assert [(e.outcome, e.principal) for e in started] == [
        ("denied", "staff:ada.lau"),
        ("success", "staff:ada.lau"),
    ]
    assert started[1].detail["incident"] == incident
    assert len(clinic.sink.messages) == 6 and len(clinic.sms.messages) == 1

    status = invoke_cli(env, "notify", "status", incident)
    assert status.returncode == 0 and "finished" in status.stdout
    assert f"Patient/{clinic.ids['deceased']}" in status.stdout

    out = tmp_path / "reports"
    for regulator in ("pcpd", "hipaa", "gdpr"):
        made = invoke_cli(env, "report", regulator, incident, "--scope", str(scope_file),
                       "--output", str(out))  # fmt: skip
        assert made.returncode == 0, made.stderr
        report = json.loads((out / f"{regulator}-{incident}.json").read_text())
        assert report["risk_assessment"]["people"] == 9
        assert (out / f"{regulator}-{incident}.pdf").read_bytes().startswith(b"%PDF")

    overview = invoke_cli(env, "status")
    assert overview.returncode == 0, overview.stderr
    assert "Regulators' clocks running: 3" in overview.stdout and "gdpr" in overview.stdout

    refused = invoke_cli(env, "report", "decide", incident, "--regulator", "gdpr", "--decision",
                      "not-notify", "--reason", "EU residents are not affected",
                      "--officer", "ada.lau", "--totp", "000000")  # fmt: skip
    assert refused.returncode == 1
    decided = invoke_cli(env, "report", "decide", incident, "--regulator", "gdpr", "--decision",
                      "not-notify", "--reason", "EU residents are not affected",
                      "--officer", "ada.lau", "--totp", fresh_code(officer))  # fmt: skip
    assert decided.returncode == 0, decided.stderr
    overview = invoke_cli(env, "status")
    assert "Regulators' clocks running: 2" in overview.stdout
    decisions = [
        event
        for _, data in clinic.services.audit_ledger.store.entries()
        if (event := AuditEvent.from_canonical(data)).tag is Tag.NOTIFY_RISK_DECIDED
    ]
    assert [(e.outcome, e.detail["decision"]) for e in decisions] == [
        ("denied", "not-notify"),
        ("success", "not-notify"),
    ]
    # The officer's words are sealed in the entry (they may name a patient: stop 55).
    assert decisions[1].reason == "not-notify (the officer's reason sealed in the detail)"
    assert "EU residents" not in json.dumps(decisions[1].detail)
    opened = decisions_for(clinic.services).reason_of(decisions[1])
    assert opened == "EU residents are not affected"


def test_a_preview_or_report_that_cannot_be_made_says_why_and_fails(
    clinic: Clinic, tmp_path: Path
) -> None:
    scope_file = tmp_path / "scope.json"
    scope_file.write_text(json.dumps(clinic.scope))
    env = _env(clinic)
    incident = clinic.scope["incident"]["id"]
    unknown = invoke_cli(env, "notify", "preview", incident, "--scope", str(scope_file),
                         "--patient", "no-such-patient")  # fmt: skip
    assert unknown.returncode == 1, unknown.stdout
    assert "Patient/no-such-patient" in unknown.stderr and "not among" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    password = "correct horse battery staple"
    _, secret = clinic.services.accounts.add(
        "ada.lau", "Ada Lau", Role.PRIVACY_OFFICER, [], password
    )
    officer = Login("ada.lau", "privacy_officer", secret, password, frozenset())
    deceased = invoke_cli(env, "notify", "preview", incident, "--scope", str(scope_file),
                          "--patient", f"Patient/{clinic.ids['deceased']}",
                          "--officer", "ada.lau", "--totp", fresh_code(officer))  # fmt: skip
    assert deceased.returncode == 1 and "deceased" in deceased.stderr
    assert clinic.sink.messages == []
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    report = invoke_cli(env, "report", "pcpd", incident, "--scope", str(scope_file),
                        "--output", str(not_a_folder / "reports"))  # fmt: skip
    assert report.returncode == 1 and "cannot write" in report.stderr
    assert "Traceback" not in report.stderr
