"""Step-up codes as a token thief meets them (``POST /auth/step-up``): wrong codes count
against the account from every source, so a holder of a stolen token cannot spread
guesses over a crowd of networks; a session that is not paused is not an oracle at all;
and the CLI on the host is never held by what the thief did.

Before: failed step-ups were held only per (account, source /64), so the holder of an
IPv6 /48 had five free guesses from each of 65,536 networks, and any live token could
probe the account's codes."""

from __future__ import annotations

from typing import Any

import pytest

from carevault.access.accounts import NotAnOfficer, SignInFailed, officer_refusal
from carevault.access.throttle import STEP_UP, STEP_UP_ACCOUNT
from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.ledger.events import Tag
from tests.integration.access.audit_log import reasons
from tests.integration.access.conftest import APP, FromAddress, MovableClock, NewStaff, Staff

NETWORKS = 30
HELD_BY_ACCOUNT = "back-off on step-up codes of this account from every address"


def _token(services: Services, staff: Staff) -> dict[str, str]:
    session = services.sessions.open(
        subject=staff.account_id,
        account_id=staff.account_id,
        client_id=APP,
        scope="user/*.cruds",
        with_refresh=False,
        source_address="198.51.100.7",
        user_agent="clinic app",
    )
    return {"authorization": f"Bearer {session.access_token}"}


def _step_up(web_from: FromAddress, address: str, token: dict[str, str], code: str) -> Any:
    return web_from(address).post("/auth/step-up", json={"totp": code}, headers=token)


def test_guesses_spread_over_networks_are_held_for_the_account(
    web_from: FromAddress, auth_services: Services, new_staff: NewStaff, clock: MovableClock
) -> None:
    clock.freeze()
    desk = new_staff(Role.FRONT_DESK)
    token = _token(auth_services, desk)
    auth_services.sessions.require_step_up(account_id=desk.account_id, reason="alert")
    answers = [
        _step_up(web_from, f"2001:db8:77:{network:x}::1", token, desk.wrong_code()).status_code
        for network in range(NETWORKS)
        for _ in range(STEP_UP.free)
    ]
    assert answers == [401] * NETWORKS * STEP_UP.free
    said = reasons(auth_services.audit_ledger.store, Tag.AUTH_STEPPED_UP)
    # Only the account's free allowance of codes was weighed; every other guess, from
    # whichever network, was held and recorded as held.
    assert said.count("step-up: wrong or replayed TOTP code") == STEP_UP_ACCOUNT.free
    held = [reason for reason in said if HELD_BY_ACCOUNT in reason]
    assert len(held) == NETWORKS * STEP_UP.free - STEP_UP_ACCOUNT.free
    # Even the right code from a fresh network is held while the account waits.
    assert _step_up(web_from, "2001:db8:99::1", token, desk.code()).status_code == 401
    # The CLI on the host (no source) is not held by it: the owner can always prove it
    # is them there, e.g. to contain.
    assert auth_services.accounts.confirm_totp(desk.username, desk.code(), None)
    # Once the wait is over, the owner steps up from the office.
    clock.advance(STEP_UP_ACCOUNT.wait_seconds(STEP_UP_ACCOUNT.free))
    clock.advance(30)  # a fresh time step: the host's code above is spent
    assert _step_up(web_from, "198.51.100.7", token, desk.code()).status_code == 200


def test_a_session_that_is_not_paused_weighs_no_code(
    web_from: FromAddress, auth_services: Services, new_staff: NewStaff, clock: MovableClock
) -> None:
    clock.freeze()
    desk = new_staff(Role.FRONT_DESK)
    token = _token(auth_services, desk)
    refused = _step_up(web_from, "203.0.113.66", token, desk.code())
    assert refused.status_code == 401
    assert "not waiting for a step-up" in refused.json()["error_description"]
    assert reasons(auth_services.audit_ledger.store, Tag.AUTH_STEPPED_UP) == [
        "step-up: the session is not paused for one"
    ]
    # The code was not spent: once the session is paused, the same code resumes it.
    auth_services.sessions.require_step_up(account_id=desk.account_id, reason="alert")
    assert _step_up(web_from, "203.0.113.66", token, desk.code()).status_code == 200


def test_an_officers_decision_takes_an_officers_fresh_code_and_spends_anyone_elses(
    auth_services: Services, new_staff: NewStaff, clock: MovableClock
) -> None:
    """``confirm_officer``, which every door of an officer's decision goes through: an
    officer's fresh code passes once; a manager's right code is refused as not an
    officer's, and spent all the same (it cannot be tried again elsewhere)."""
    clock.freeze()
    officer = new_staff(Role.PRIVACY_OFFICER)
    manager = new_staff(Role.CLINIC_MANAGER)
    accounts = auth_services.accounts

    assert accounts.confirm_officer(officer.username, officer.code(), None).role is (
        Role.PRIVACY_OFFICER
    )
    with pytest.raises(SignInFailed) as replayed:
        accounts.confirm_officer(officer.username, officer.used_code(), None)
    with pytest.raises(NotAnOfficer) as refused:
        accounts.confirm_officer(manager.username, manager.code(), None)
    with pytest.raises(SignInFailed) as spent:
        accounts.confirm_totp(manager.username, manager.used_code(), None)

    assert replayed.value.reason == "wrong or replayed TOTP code"
    assert refused.value.reason == "clinic_manager is not a privacy officer"
    assert officer_refusal(refused.value) == "only a privacy officer may do this"
    assert officer_refusal(spent.value) == "a privacy officer's fresh TOTP code is required"
    assert spent.value.reason == "wrong or replayed TOTP code"
