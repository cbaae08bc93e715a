"""What the console does, an operator does on the host with the same services:
``carevault staff sessions`` / ``end-session`` see and end a console session, and
``carevault audit verify`` records the run the dashboard shows."""

from __future__ import annotations

import pytest

from carevault.bootstrap import Services
from tests.integration.web.console.conftest import Browser
from tests.support.console import Person, ledger_events
from tests.support.server import environment, run_cli

pytestmark = pytest.mark.postgres


def test_the_cli_sees_ends_and_verifies_what_the_console_shows(
    signed_in: Browser, console_services: Services, officer: Person
) -> None:
    settings = console_services.settings
    env = environment(settings.home, settings.database_url)
    client = signed_in(officer)
    (session,) = console_services.sessions.list_for(officer.account_id)
    listed = run_cli(env, "staff", "sessions", timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert f"{session.session_id}\tofficer1\tcarevault-console" in listed.stdout
    verified = run_cli(env, "audit", "verify", timeout=120)
    assert verified.returncode == 0, verified.stderr
    runs = console_services.verify_runs.latest_finished()
    assert runs["audit"].ok and runs["audit"].started_by.startswith("cli:")
    assert "Passed" in client.get("/console/dashboard").text
    ended = run_cli(env, "staff", "end-session", session.session_id, timeout=120)
    assert ended.returncode == 0, ended.stderr
    assert client.get("/console/dashboard", follow_redirects=False).status_code == 303
    entry = [e for e in ledger_events(console_services) if e["tag"] == "admin:session:ended"]
    assert entry[-1]["principal"].startswith("cli:")
