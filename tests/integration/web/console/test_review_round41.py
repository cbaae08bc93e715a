"""Review of round 41 (SQLite and PostgreSQL): what the fixes of round 41 still leave.

Each test is a defect found in review (stop 40), fixed.
"""

from __future__ import annotations

import re

import pytest

from carevault.bootstrap import Services
from carevault.containment.service import Officer
from carevault.containment.state import Mode
from carevault.domain.roles import Role
from carevault.incidents import incidents_for
from tests.integration.web.console.conftest import Browser
from tests.support.console import CLINIC_B, MovableClock, Person, add_person, csrf_of

pytestmark = pytest.mark.postgres


def test_a_managers_dashboard_shows_no_other_clinics_suspension(
    signed_in: Browser,
    console_services: Services,
    manager: Person,
    officer: Person,
    clock: MovableClock,
) -> None:
    theirs = add_person(console_services, clock, "desk9", Role.FRONT_DESK, [CLINIC_B])
    console_services.contain.start(
        Officer(officer.username, officer.code()),
        Mode.ACCOUNT_SUSPENDED,
        theirs.username,
        "gossip about a colleague",
    )
    containment = signed_in(manager).get("/console/containment").text
    assert "gossip about a colleague" not in containment  # the round-41 fix holds here
    dashboard = signed_in(manager).get("/console/dashboard").text
    assert "gossip about a colleague" not in dashboard
    assert theirs.username not in dashboard


def _declare_about(client: object, token: str, account: str) -> int:
    declared = client.post(  # type: ignore[attr-defined]
        "/console/incidents",
        data={"csrf": token, "title": "officer snooping", "since": "2026-01-01T00:00",
              "until": "2026-12-31T00:00", "accounts": account},
        follow_redirects=False,
    )  # fmt: skip
    assert declared.status_code == 303, declared.text
    return int(re.findall(r"/console/incidents/(\d+)", declared.headers["location"])[0])


def test_an_officer_named_as_a_full_principal_does_not_close_their_incident(
    console_services: Services,
    signed_in: Browser,
    officer: Person,
    second_officer: Person,
) -> None:
    colleague = signed_in(second_officer)
    token = csrf_of(colleague.get("/console/incidents").text)
    incident_id = _declare_about(colleague, token, f"staff:{officer.username}")
    before = incidents_for(console_services).get(incident_id)
    assert before.compromised.accounts == (f"staff:{officer.username}",)

    named = signed_in(officer)
    own = csrf_of(named.get(f"/console/incidents/{incident_id}").text)
    tried = named.post(
        f"/console/incidents/{incident_id}/amend",
        data={"csrf": own, "title": "", "totp": officer.code(), "status": "closed"},
        follow_redirects=False,
    )
    assert tried.status_code in (400, 403), tried.status_code
    assert incidents_for(console_services).get(incident_id) == before
