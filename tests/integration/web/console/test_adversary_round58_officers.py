"""Adversary round 58 on the console (SQLite and PostgreSQL): lifting a suspension off
the record.

A suspension made as containment (``account-suspended``) is lifted by releasing that
containment: recorded as released, shown so on the containment page, the dashboard and
the incident's containment (which a notice reads to say "we stopped the access"). The
staff page's reinstate looked for the containment by the username exactly as the URL
spelt it; ``/console/staff/DOCTOR1/reinstate`` (or ``doctor1%20``) found none, took the
branch for a suspension made on the host, and reinstated the account (usernames are
matched casefolded): the doctor read again while every page, and the incident, said the
account was still suspended.
"""

from __future__ import annotations

import pytest

from carevault.bootstrap import Services
from carevault.containment.service import Officer
from carevault.containment.state import Mode
from carevault.domain.roles import Role
from carevault.incidents import Actor, declare_case, incidents_for
from carevault.incidents.model import Amendment, Status
from carevault.ledger.events import Tag
from tests.integration.web.console.conftest import Browser
from tests.support.console import (
    CLINIC_A,
    CLINIC_B,
    PASSWORD,
    Person,
    csrf_of,
    ledger_events,
)

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("spelt", ["DOCTOR1", "doctor1%20", "Doctor1"])
def test_a_suspension_made_as_containment_is_never_lifted_off_the_record(
    signed_in: Browser,
    console_services: Services,
    officer: Person,
    second_officer: Person,
    physician: Person,
    spelt: str,
) -> None:
    svc = console_services
    started = svc.contain.start(
        Officer(second_officer.username, second_officer.code(), "127.0.0.1"),
        Mode.ACCOUNT_SUSPENDED,
        physician.username,
        "reading past the budget",
    )
    client = signed_in(officer)
    token = csrf_of(client.get("/console/staff").text)
    answer = client.post(
        f"/console/staff/{spelt}/reinstate",
        data={"csrf": token, "totp": officer.code(), "reason": "back to work"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    account = svc.accounts.find(physician.username)
    assert account is not None
    suspended_on_record = any(
        item.containment_id == started.containment_id for item in svc.containment.refresh().active
    )
    # The account and the record agree: reinstated means the containment was released
    # (recorded as such), never an account reading while the pages say it is suspended.
    assert account.suspended == suspended_on_record
    if not account.suspended:
        released = [e for e in ledger_events(svc) if e["tag"] == Tag.CONTAIN_RELEASED]
        assert [e["principal"] for e in released] == [f"staff:{officer.username}"]


def test_a_suspension_typed_in_capitals_is_kept_by_the_accounts_own_name(
    signed_in: Browser,
    console_services: Services,
    officer: Person,
    second_officer: Person,
    physician: Person,
) -> None:
    """The containment page's target, typed ``DOCTOR1``: kept as ``doctor1``, so the
    staff page's reinstate releases it (recorded) rather than lifting it unseen."""
    svc = console_services
    client = signed_in(second_officer)
    token = csrf_of(client.get("/console/containment/start?mode=account-suspended").text)
    started = client.post(
        "/console/containment/start",
        data={"csrf": token, "mode": "account-suspended", "target": "DOCTOR1",
              "reason": "reading past the budget", "totp": second_officer.code()},
        follow_redirects=False,
    )  # fmt: skip
    assert started.status_code == 303, started.text
    (item,) = [i for i in svc.containment.refresh().active if i.mode is Mode.ACCOUNT_SUSPENDED]
    assert item.target == physician.username
    other = signed_in(officer)
    token = csrf_of(other.get("/console/staff").text)
    other.post(
        f"/console/staff/{physician.username}/reinstate",
        data={"csrf": token, "totp": officer.code(), "reason": "back to work"},
        follow_redirects=False,
    )
    account = svc.accounts.find(physician.username)
    assert account is not None and not account.suspended
    assert not [i for i in svc.containment.refresh().active if i.mode is Mode.ACCOUNT_SUSPENDED]


def test_an_officer_an_incident_names_does_not_lift_its_containment(
    signed_in: Browser,
    console_services: Services,
    officer: Person,
    second_officer: Person,
) -> None:
    """Hole (round 58): officer1 is named in an incident (their reads from an address
    abroad); officer2 blocks that address and takes patient data offline for it. The
    release checked only that an account suspension was not about the releaser, so
    officer1 lifted both with their own code. Now refused (403, recorded); officer2
    releases them."""
    svc = console_services
    incident = declare_case(
        svc,
        Actor(f"staff:{second_officer.username}"),
        {"title": "officer reading from abroad", "accounts": [officer.username],
         "addresses": ["203.0.113.0/24"], "since": "2026-01-01"},
    ).incident_id  # fmt: skip
    block = svc.contain.start(
        Officer(second_officer.username, second_officer.code(), "127.0.0.1"),
        Mode.BLOCK_ADDRESS,
        "203.0.113.0/24",
        "the named officer's reads",
    )
    offline = svc.contain.start(
        Officer(second_officer.username, second_officer.code(), "127.0.0.1"),
        Mode.PHI_OFFLINE,
        None,
        "the named officer's reads",
    )
    client = signed_in(officer)
    for item in (block, offline):
        page = client.get(f"/console/containment/{item.containment_id}/release")
        refused = client.post(
            f"/console/containment/{item.containment_id}/release",
            data={"csrf": csrf_of(page.text), "totp": officer.code(), "reason": "all clear"},
            follow_redirects=False,
        )
        assert refused.status_code == 403, refused.text
    active = {item.containment_id for item in svc.containment.refresh().active}
    assert {block.containment_id, offline.containment_id} <= active
    refusals = [e for e in ledger_events(svc) if e["tag"] == Tag.CONTAIN_REFUSED]
    assert [e["principal"] for e in refusals] == [f"staff:{officer.username}"] * 2
    assert all("names them" in e["reason"] for e in refusals)
    # Another officer releases them; once the incident is closed, anyone may.
    svc.contain.release(
        Officer(second_officer.username, second_officer.code(), "127.0.0.1"),
        block.containment_id,
        "reviewed",
    )
    incidents_for(svc).amend(
        Actor(f"staff:{second_officer.username}"),
        incident,
        Amendment(status=Status.CLOSED),
        step_up=lambda action: f"staff:{second_officer.username}",
    )
    svc.contain.release(
        Officer(officer.username, officer.code(), "127.0.0.1"), offline.containment_id, "closed"
    )
    assert not svc.containment.refresh().active


HOSTILE = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


def test_names_and_titles_are_text_and_every_download_carries_the_headers(
    signed_in: Browser, console_services: Services, officer: Person, physician: Person
) -> None:
    """Held (round 58): a staff display name and an incident title holding markup are
    shown as text on the staff, incident and scope pages; the downloads of a scope and a
    regulator's report are not cached, framed or sniffed."""
    svc = console_services
    svc.accounts.add("hostile", HOSTILE, Role.FRONT_DESK, [CLINIC_A], PASSWORD)
    incident = declare_case(
        svc,
        Actor(f"staff:{officer.username}"),
        {"title": HOSTILE, "accounts": ["hostile"], "since": "2026-01-01"},
    ).incident_id
    client = signed_in(officer)
    for path in (
        "/console/staff",
        "/console/staff/hostile",
        "/console/incidents",
        f"/console/incidents/{incident}",
        f"/console/incidents/{incident}/scope",
    ):
        shown = client.get(path)
        assert shown.status_code == 200, path
        assert "<script>alert(2)" not in shown.text and "<img src=x" not in shown.text, path
    for path in (
        f"/console/incidents/{incident}/scope.html",
        f"/console/incidents/{incident}/scope.csv",
        f"/console/incidents/{incident}/scope.json",
        f"/console/incidents/{incident}/reports/pcpd.json",
    ):
        got = client.get(path)
        assert got.status_code == 200, path
        assert got.headers["cache-control"] == "no-store", path
        assert got.headers["x-frame-options"] == "DENY", path
        assert got.headers["x-content-type-options"] == "nosniff", path
        assert "attachment" in got.headers["content-disposition"], path
    html = client.get(f"/console/incidents/{incident}/scope.html").text
    assert "<script>alert(2)" not in html and "<img src=x" not in html


@pytest.mark.parametrize("typed", ["CLINIC-TUEN-MUN", "clinic-nowhere"])
def test_a_clinic_lock_locks_a_clinic_of_the_group_or_is_refused(
    signed_in: Browser, console_services: Services, officer: Person, typed: str
) -> None:
    """Hole (round 58): the containment page's form posts any target, and a lock was
    kept as typed; the gate compares clinic ids exactly, so ``CLINIC-TUEN-MUN`` (or a
    clinic no one has) locked nothing while the dashboard and the containment page
    showed the clinic locked. Now the lock names the group's clinic, or is refused
    (400) and nothing is on."""
    svc = console_services
    client = signed_in(officer)
    token = csrf_of(client.get("/console/containment/start?mode=clinic-lock").text)
    answer = client.post(
        "/console/containment/start",
        data={"csrf": token, "mode": "clinic-lock", "target": typed,
              "reason": "the desk's clinic is compromised", "totp": officer.code()},
        follow_redirects=False,
    )  # fmt: skip
    state = svc.containment.refresh()
    if typed == "clinic-nowhere":
        assert answer.status_code == 400, answer.text
        assert not state.active
    else:
        assert answer.status_code == 303, answer.text
        assert state.locked_clinics == {CLINIC_A}


def test_a_manager_does_not_read_why_another_clinics_app_was_revoked(
    signed_in: Browser,
    console_services: Services,
    officer: Person,
    manager: Person,
) -> None:
    """Hole (round 58): a manager sees the containment of their own clinics' staff and
    locks only (another clinic's suspended desk, with the officer's reason, is not
    theirs to read), but every client app's revocation was shown, reason and all."""
    svc = console_services
    svc.clients.add("tw-lab", "Tsuen Wan lab", confidential=True, scopes="system/*.rs",
                    clinic_ids=[CLINIC_B])  # fmt: skip
    svc.clients.add("tm-lab", "Tuen Mun lab", confidential=True, scopes="system/*.rs",
                    clinic_ids=[CLINIC_A])  # fmt: skip
    for client_id, reason in (("tw-lab", "TW LAB SENT RECORDS ABROAD"), ("tm-lab", "TM LAB")):
        svc.contain.start(
            Officer(officer.username, officer.code(), "127.0.0.1"),
            Mode.CLIENT_REVOKED,
            client_id,
            reason,
        )
    client = signed_in(manager)
    for path in ("/console/containment", "/console/dashboard"):
        shown = client.get(path)
        assert shown.status_code == 200, path
        assert "TW LAB SENT RECORDS ABROAD" not in shown.text and "tw-lab" not in shown.text
    assert "tm-lab" in client.get("/console/containment").text
