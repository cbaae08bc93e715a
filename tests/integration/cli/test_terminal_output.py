"""Listings of stored data (incidents, client apps, containment, break-the-glass) print
names and reasons that hold escape sequences and bidirectional overrides as harmless
``\\uXXXX`` text; ``--json`` stays valid JSON with the values as stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carevault.cli import app
from carevault.containment.state import Mode
from carevault.incidents import Actor, declare_case
from tests.support.cli_home import cli_services
from tests.support.staff import add_account

# color=True: click would strip some ANSI sequences when not writing to a terminal; an
# officer's terminal is one, so the test must see what it would see.
runner = CliRunner()
ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x9b31m"
RLO = "\u202e"
TITLE = f"Phished {RLO}fdp.exe"
NAME = f"Portal{ESCAPES}\rFAKE{RLO}ppa"


def _printed(home: Path, *args: str) -> str:
    result = runner.invoke(app, [*args, "--home", str(home)], color=True)
    assert result.exit_code == 0, result.output
    return result.output


def _harmless(output: str) -> None:
    for char in ("\x1b", "\x07", "\x9b", "\r", RLO):
        assert char not in output, repr(char)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    services = cli_services(tmp_path, monkeypatch)
    home = services.settings.home
    try:
        add_account(services, "thief")
        declare_case(services, Actor("cli:test"), {"title": TITLE, "accounts": ["thief"],
                                                   "since": "2026-01-01T00:00:00Z"})  # fmt: skip
        services.clients.add(
            "portal-app", NAME, confidential=False, scopes="user/*.rs",
            redirect_uris=["https://portal.example/cb"],
        )  # fmt: skip
        # A reason is typed text too (here straight into the store: the service wants
        # an officer's code, which is not what this test is about).
        services.containment.start(Mode.READ_ONLY, None, f"drill\n  #9 {ESCAPES}", "staff:ada")
    finally:
        services.close()
    return home


def test_listings_print_escapes_not_control_sequences(home: Path) -> None:
    incidents = _printed(home, "incident", "list")
    _harmless(incidents)
    assert "Phished \\u202efdp.exe" in incidents
    clients = _printed(home, "client", "list")
    _harmless(clients)
    assert "Portal\\u001b]0;pwned\\u0007\\u001b[2J\\u009b31m\\u000dFAKE\\u202eppa" in clients
    assert len(clients.strip().splitlines()) == 1
    status = _printed(home, "status")
    _harmless(status)
    # The reason's line break is shown, not obeyed: no forged "#9" row.
    assert "drill\\u000a  #9 \\u001b]0;pwned" in status


def test_json_output_is_still_valid_json_with_the_stored_values(home: Path) -> None:
    shown = _printed(home, "incident", "show", "1")
    _harmless(shown)
    assert json.loads(shown)["title"] == TITLE
    scope = _printed(home, "incident", "scope", "1", "--format", "json")
    _harmless(scope)
    assert json.loads(scope)["incident"]["title"] == TITLE
