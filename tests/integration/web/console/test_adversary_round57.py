"""Adversary round 57, the console's reinstate: Dr Wong's physician login is suspended by
the operator on the host (``carevault staff suspend``: no containment to release); Dr
Wong's officer login, naming the same Practitioner, lifted it from the staff page, where
a containment's release is refused to them since round 56 (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from tests.integration.web.console.conftest import Browser
from tests.support.console import (
    CLINIC_A,
    PASSWORD,
    MovableClock,
    Person,
    csrf_of,
    ledger_events,
)

pytestmark = pytest.mark.postgres


def test_an_officer_does_not_reinstate_their_own_doctors_login(
    signed_in: Browser, console_services: Services, clock: MovableClock, officer: Person
) -> None:
    svc = console_services
    doctor, _ = svc.accounts.add(
        "wongdoc", "Dr Wong", Role.PHYSICIAN, [CLINIC_A], PASSWORD, "dr-wong"
    )
    account, secret = svc.accounts.add(
        "wongpo", "Officer Wong", Role.PRIVACY_OFFICER, [CLINIC_A], PASSWORD, "dr-wong"
    )
    wong = Person(
        "wongpo", "Officer Wong", account.account_id, secret, clock, Role.PRIVACY_OFFICER,
        frozenset([CLINIC_A]),
    )  # fmt: skip
    svc.admin.suspend("operator:host", doctor.username, reason="reading past the budget")
    client = signed_in(wong)
    token = csrf_of(client.get("/console/staff").text)
    refused = client.post(
        f"/console/staff/{doctor.username}/reinstate",
        data={"csrf": token, "totp": wong.code(), "reason": "my mistake"},
        follow_redirects=False,
    )
    assert refused.status_code == 403, refused.text
    found = svc.accounts.find(doctor.username)
    assert found is not None and found.suspended
    refusals = [e for e in ledger_events(svc) if e["tag"] == "console:request:refused"]
    assert [e["principal"] for e in refusals] == ["staff:wongpo"]
    # Another officer reinstates the doctor.
    other = signed_in(officer)
    token = csrf_of(other.get("/console/staff").text)
    done = other.post(
        f"/console/staff/{doctor.username}/reinstate",
        data={"csrf": token, "totp": officer.code(), "reason": "reviewed"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and "done=reinstated" in done.headers["location"]
    found = svc.accounts.find(doctor.username)
    assert found is not None and not found.suspended
