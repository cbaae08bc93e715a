"""Sign-in throttling as an attacker meets it: the address that fails slows down, a
crowd of addresses holds an account for a minute at most, and nothing a stranger does
keeps a privacy officer from containment (recovery codes; the CLI on the host).

Before: ten wrong passwords from anywhere locked any account for 15 minutes, and the
count did not reset when the lock ended, so anyone could keep both privacy officers
(and with them every containment switch) locked out.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from carevault.access.registrations import FailureCounter, TooManyAttempts
from carevault.access.throttle import ACCOUNT, PAIR, REGISTRATION, SOURCE, STEP_UP
from carevault.bootstrap import Services, build_services
from carevault.domain.roles import Role
from carevault.ledger.events import Tag
from tests.integration.access.audit_log import events, reasons
from tests.integration.access.conftest import APP, FromAddress, MovableClock, NewStaff, Staff
from tests.integration.access.test_sign_in import REFUSED, WRONG_PASSWORD
from tests.support.client import FhirTestClient
from tests.support.server import environment, run_cli

STRANGER = "203.0.113.66"
OFFICE = "198.51.100.7"
HELD_BY_ACCOUNT = "attempt during back-off on this username from every address"
HELD_BY_PAIR = "attempt during back-off on this username from this address"


def _wrong(client: FhirTestClient, staff: Staff) -> Any:
    return client.post(
        "/auth/token", data={**staff.grant(code="123456"), "password": WRONG_PASSWORD}
    )


#: The waits a crowd of new addresses sits out, failing once each the moment the last
#: wait ends (the worst a crowd can do): after them the account's wait is its longest.
CROWD_WAITS = [ACCOUNT.wait_seconds(level) for level in range(1, 17)]


def _crowd(web_from: FromAddress, staff: Staff, clock: MovableClock, first: int = 1) -> None:
    for number, wait in enumerate([*CROWD_WAITS, 0], start=first):
        assert _wrong(web_from(f"203.0.113.{number}"), staff).json() == REFUSED
        clock.advance(wait)


def test_a_stranger_at_one_address_cannot_keep_an_officer_out_from_another(
    web_from: FromAddress, auth_services: Services, new_staff: NewStaff, clock: MovableClock
) -> None:
    officer = new_staff(Role.PRIVACY_OFFICER)
    stranger = web_from(STRANGER)
    # A wrong password every ten seconds for almost seven minutes, until now.
    clock.freeze()
    clock.advance(-400)
    for _ in range(40):
        response = _wrong(stranger, officer)
        assert response.status_code == 400
        assert response.json() == REFUSED
        clock.advance(10)

    clock.thaw()  # the officer's token is checked against the wall clock
    office = web_from(OFFICE)
    signed_in = office.post("/auth/token", data=officer.grant())
    assert signed_in.status_code == 200
    token = {"authorization": f"Bearer {signed_in.json()['access_token']}"}
    switch = {"mode": "read-only", "reason": "drill under attack", "totp": officer.code()}
    started = office.post("/admin/containment", json=switch, headers=token)
    assert started.status_code == 201, started.text

    store = auth_services.audit_ledger.store
    failed = events(store, Tag.AUTH_SIGN_IN_FAILED)
    throttled = events(store, Tag.AUTH_SIGN_IN_THROTTLED)
    # Every attempt is in the ledger: counted, or refused unchecked during a wait.
    assert len(failed) + len(throttled) == 40
    assert 9 <= len(failed) <= 13 and {event.reason for event in throttled} == {HELD_BY_PAIR}
    assert {event.source_address for event in failed + throttled} == {STRANGER}
    (signed,) = events(store, Tag.AUTH_SIGNED_IN)
    assert signed.source_address == OFFICE
    (contained,) = events(store, Tag.CONTAIN_STARTED)
    assert contained.principal == f"staff:{officer.username}"


def test_a_crowd_of_addresses_holds_an_account_a_minute_at_most_and_a_recovery_code_passes(
    web_from: FromAddress, auth_services: Services, new_staff: NewStaff, clock: MovableClock
) -> None:
    officer = new_staff(Role.PRIVACY_OFFICER)
    _, codes = auth_services.admin.issue_recovery_codes("admin:test", officer.username)
    clock.freeze()
    _crowd(web_from, officer, clock)
    office = web_from(OFFICE)

    held = office.post("/auth/token", data=officer.grant())
    passed = office.post("/auth/token", data=officer.grant(code=codes[0].lower()))
    used_again = office.post("/auth/token", data=officer.grant(code=codes[0]))

    assert held.status_code == used_again.status_code == 400
    assert held.json() == used_again.json() == REFUSED
    assert passed.status_code == 200
    store = auth_services.audit_ledger.store
    (throttled,) = events(store, Tag.AUTH_SIGN_IN_THROTTLED)
    assert (throttled.reason, throttled.source_address) == (HELD_BY_ACCOUNT, OFFICE)
    assert throttled.detail == {"wait_seconds": ACCOUNT.max_wait_seconds}
    (recovered,) = events(store, Tag.AUTH_RECOVERY_CODE_USED)
    assert recovered.principal == f"staff:{officer.username}"
    assert (recovered.source_address, recovered.detail) == (OFFICE, {"codes_left": 9})
    (signed_in,) = events(store, Tag.AUTH_SIGNED_IN)
    assert signed_in.reason == "password and recovery code verified"
    assert reasons(store, Tag.AUTH_SIGN_IN_FAILED)[-1] == "wrong or used recovery code"

    # A new crowd comes; its hold lasts a minute, then the TOTP code works too.
    _crowd(web_from, officer, clock, first=101)
    assert office.post("/auth/token", data=officer.grant()).json() == REFUSED
    clock.advance(ACCOUNT.max_wait_seconds)
    assert office.post("/auth/token", data=officer.grant()).status_code == 200


def test_the_officer_contains_from_the_host_cli_while_a_crowd_holds_their_sign_in(
    web_from: FromAddress, auth_services: Services, new_staff: NewStaff, clock: MovableClock
) -> None:
    officer = new_staff(Role.PRIVACY_OFFICER)
    # The crowd started two minutes ago: the CLI checks TOTP codes against the real clock.
    clock.freeze()
    clock.advance(-sum(CROWD_WAITS))
    _crowd(web_from, officer, clock)
    assert web_from(OFFICE).post("/auth/token", data=officer.grant()).json() == REFUSED
    clock.thaw()

    settings = auth_services.settings
    done = run_cli(
        environment(settings.home, settings.database_url),
        "contain", "start", "phi-offline", "--reason", "sign-in under attack",
        "--officer", officer.username, "--totp", officer.code(),
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert "phi-offline is ON" in done.stdout
    (contained,) = events(auth_services.audit_ledger.store, Tag.CONTAIN_STARTED)
    assert (contained.principal, contained.source_address) == (f"staff:{officer.username}", "cli")


def test_spraying_from_one_address_slows_only_that_address_and_says_nothing_of_accounts(
    web_from: FromAddress, auth_services: Services, new_staff: NewStaff, clock: MovableClock
) -> None:
    clock.freeze()
    colleague = new_staff(Role.NURSE)
    sprayer = web_from(STRANGER)
    answers = set()
    for number in range(SOURCE.free):
        # Known and unknown usernames alike: the throttle cannot tell them apart either.
        form = {**colleague.grant(code="123456"), "password": WRONG_PASSWORD}
        if number >= 2:
            form["username"] = f"guess{number}"
        answers.add(sprayer.post("/auth/token", data=form).content)
    # A colleague behind the same address now waits a second; elsewhere nothing changed.
    held = sprayer.post("/auth/token", data=colleague.grant())
    answers.add(held.content)
    elsewhere = web_from(OFFICE).post("/auth/token", data=colleague.grant())

    assert len(answers) == 1 and held.json() == REFUSED
    assert elsewhere.status_code == 200
    (throttled,) = events(auth_services.audit_ledger.store, Tag.AUTH_SIGN_IN_THROTTLED)
    assert throttled.reason == "attempt during back-off on this address"
    assert throttled.source_address == STRANGER


def test_unknown_usernames_are_held_back_exactly_like_known_ones(
    web_from: FromAddress, auth_services: Services, new_staff: NewStaff, clock: MovableClock
) -> None:
    clock.freeze()
    staff = new_staff()
    prober = web_from(STRANGER)
    bodies = []
    for username in (staff.username, "no.such.person"):
        form = {**staff.grant(code="123456"), "password": WRONG_PASSWORD, "username": username}
        bodies += [prober.post("/auth/token", data=form).content for _ in range(PAIR.free + 1)]

    assert len(set(bodies)) == 1
    throttled = events(auth_services.audit_ledger.store, Tag.AUTH_SIGN_IN_THROTTLED)
    assert [event.reason for event in throttled] == [HELD_BY_PAIR] * 2
    assert [event.principal for event in throttled] == [f"staff-account:{staff.account_id}", None]


def test_levels_drain_with_time_and_a_success_empties_them(
    web_from: FromAddress, auth_services: Services, new_staff: NewStaff, clock: MovableClock
) -> None:
    clock.freeze()
    staff = new_staff()
    office = web_from(OFFICE)
    for _ in range(PAIR.free - 1):
        _wrong(office, staff)
    assert office.post("/auth/token", data=staff.grant()).status_code == 200
    # Emptied by the success: as many failures again cause no wait.
    for _ in range(PAIR.free - 1):
        _wrong(office, staff)
    clock.advance(30)
    assert office.post("/auth/token", data=staff.grant()).status_code == 200

    for _ in range(PAIR.free):
        _wrong(office, staff)
    clock.advance(1 + 3600 * (PAIR.free - 1) / PAIR.drain_per_hour)
    # Drained to about one: one more failure is free, and the owner gets in.
    _wrong(office, staff)
    assert office.post("/auth/token", data=staff.grant()).status_code == 200
    assert events(auth_services.audit_ledger.store, Tag.AUTH_SIGN_IN_THROTTLED) == []


def test_an_administrator_clears_a_back_off_and_it_is_recorded(
    web_from: FromAddress, auth_services: Services, new_staff: NewStaff, clock: MovableClock
) -> None:
    clock.freeze()
    staff = new_staff()
    office = web_from(OFFICE)
    for _ in range(PAIR.free):
        _wrong(office, staff)
    assert office.post("/auth/token", data=staff.grant()).json() == REFUSED

    cleared = auth_services.admin.clear_throttle("cli:operator", staff.username.upper())

    assert cleared == 2  # this username from this address, and from everywhere
    assert office.post("/auth/token", data=staff.grant()).status_code == 200
    (event,) = events(auth_services.audit_ledger.store, Tag.ADMIN_THROTTLE_CLEARED)
    assert (event.principal, event.reason) == ("cli:operator", staff.account_id)


def test_guessing_step_up_codes_with_a_stolen_session_slows_only_the_thief(
    web_from: FromAddress, auth_services: Services, new_staff: NewStaff, clock: MovableClock
) -> None:
    clock.freeze()
    officer = new_staff(Role.PRIVACY_OFFICER)
    stolen = auth_services.sessions.open(
        subject=officer.account_id,
        account_id=officer.account_id,
        client_id=APP,
        scope="user/*.cruds",
        with_refresh=False,
        source_address=OFFICE,
        user_agent="clinic app",
    )
    token = {"authorization": f"Bearer {stolen.access_token}"}

    def switch(client: FhirTestClient, code: str) -> Any:
        body = {"mode": "read-only", "reason": "drill", "totp": code}
        return client.post("/admin/containment", json=body, headers=token)

    thief = web_from(STRANGER)
    guesses = [switch(thief, officer.wrong_code()).status_code for _ in range(STEP_UP.free + 1)]
    # Even the right code is refused to the thief now; the officer at the office is not held.
    held = switch(thief, officer.code())
    owner = switch(web_from(OFFICE), officer.code())

    assert guesses == [403] * (STEP_UP.free + 1)
    assert held.status_code == 403
    assert owner.status_code == 201
    refusals = reasons(auth_services.audit_ledger.store, Tag.CONTAIN_REFUSED)
    held_back = "step-up during back-off on step-up codes of this account from this address"
    assert refusals.count("start read-only: wrong or replayed TOTP code") == STEP_UP.free
    assert refusals.count(f"start read-only: {held_back}") == 2


def test_levels_that_have_drained_are_forgotten_so_guessed_usernames_do_not_pile_up(
    auth_services: Services, clock: MovableClock
) -> None:
    throttle = auth_services.accounts.throttle
    for _ in range(3):
        throttle.failed("guessed.one", STRANGER)
    throttle.failed("guessed.two", OFFICE)

    clock.advance(30 * 60)
    # guessed.two's levels (1 each) and the stranger's address and username levels (3,
    # draining 20 and 10 an hour) are gone; the stranger's pair (3, 4 an hour) is not.
    assert throttle.forget_drained() == 5
    clock.advance(30 * 60)
    assert throttle.forget_drained() == 1
    assert throttle.forget_drained() == 0


def _miss(counter: FailureCounter, account: str) -> None:
    """A registration by ``account`` that registered no one."""
    with counter.counting(account) as attempt:
        attempt.missed()


def test_registration_misses_are_counted_once_for_every_server_process(
    auth_services: Services, clock: MovableClock
) -> None:
    """The registration level is in the database: a second process (services of their
    own on the same database) sees the misses of the first, and its own add to them."""
    assert auth_services.access is not None
    first = auth_services.access.registrations.failures
    other = build_services(auth_services.settings, clock=clock)
    try:
        assert other.access is not None
        second = other.access.registrations.failures
        clock.freeze()
        for counter in [first, second] * 2 + [first]:
            _miss(counter, "desk-1")
        waits = []
        for counter in (first, second):
            with pytest.raises(TooManyAttempts) as refused:
                _miss(counter, "desk-1")
            waits.append(refused.value.retry_after)
        _miss(second, "desk-2")  # another account is not held

        clock.advance(REGISTRATION.first_wait_seconds)
        _miss(second, "desk-1")  # the wait is over: one more try
        with pytest.raises(TooManyAttempts) as doubled:
            _miss(first, "desk-1")
    finally:
        other.close()

    assert waits == [REGISTRATION.first_wait_seconds] * 2
    assert doubled.value.retry_after == 2 * REGISTRATION.first_wait_seconds


def test_misses_sent_together_get_the_allowance_once(
    auth_services: Services, clock: MovableClock
) -> None:
    """Twelve registrations that register no one, sent at the same instant from twelve
    threads (as twelve requests to several workers): each is counted before it is made,
    so five pass and seven wait; none is lost, even the account's first (whose level
    does not exist yet to be locked)."""
    assert auth_services.access is not None
    failures = auth_services.access.registrations.failures
    clock.freeze()
    start = threading.Barrier(12)
    passed: list[int] = []

    def one(number: int) -> None:
        start.wait()
        try:
            with failures.counting("desk-together") as attempt:
                passed.append(number)
                attempt.missed()
        except TooManyAttempts:
            pass

    threads = [threading.Thread(target=one, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(passed) == REGISTRATION.free


def test_an_attempt_that_registered_someone_is_given_back(
    auth_services: Services, clock: MovableClock
) -> None:
    assert auth_services.access is not None
    failures = auth_services.access.registrations.failures
    clock.freeze()
    for _ in range(REGISTRATION.free - 1):
        _miss(failures, "desk-busy")
    for _ in range(10):  # ten patients registered: none of them counts
        with failures.counting("desk-busy"):
            pass
    _miss(failures, "desk-busy")  # the fifth miss: the wait begins
    with pytest.raises(TooManyAttempts), failures.counting("desk-busy"):
        pass


def test_a_registration_after_a_served_wait_leaves_no_new_wait(
    auth_services: Services, clock: MovableClock
) -> None:
    """Five misses, the wait served, then a patient registered: the attempt's count is
    given back with the wait it set, so the next try goes ahead."""
    assert auth_services.access is not None
    failures = auth_services.access.registrations.failures
    clock.freeze()
    for _ in range(REGISTRATION.free):
        _miss(failures, "desk-served")
    clock.advance(REGISTRATION.first_wait_seconds)
    with failures.counting("desk-served"):
        pass  # registered someone

    failures.check("desk-served")  # no wait


def test_an_administrator_lifts_a_busy_desks_registration_wait(
    auth_services: Services, new_staff: NewStaff, clock: MovableClock
) -> None:
    """Five walk-ins new to the group, each tried with ``$register`` first (404: a
    miss), make the desk wait; after checking with the desk, an administrator lifts it
    (recorded, as any cleared back-off), and the desk registers and writes again."""
    assert auth_services.access is not None
    failures = auth_services.access.registrations.failures
    clock.freeze()
    desk = new_staff(Role.FRONT_DESK)
    for _ in range(REGISTRATION.free):
        _miss(failures, desk.account_id)
    with pytest.raises(TooManyAttempts):
        failures.check(desk.account_id)

    cleared = auth_services.admin.clear_throttle("cli:operator", desk.username)

    assert cleared == 1
    failures.check(desk.account_id)
