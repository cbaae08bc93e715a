"""The throttle's rules, pure: waits, draining, how sources and usernames are keyed."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from carevault.access.throttle import (
    ACCOUNT,
    PAIR,
    REGISTRATION,
    SOURCE,
    STEP_UP,
    STEP_UP_ACCOUNT,
    source_key,
    username_key,
)

HOUR_US = 3_600 * 1_000_000


def test_the_address_that_fails_waits_after_three_then_doubles_up_to_fifteen_minutes() -> None:
    waits = [PAIR.wait_seconds(level) for level in range(16)]

    assert waits[: PAIR.free] == [0] * PAIR.free
    assert waits[PAIR.free :] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900]


def test_no_level_can_make_anyone_wait_long() -> None:
    assert PAIR.max_wait_seconds == 15 * 60
    assert SOURCE.max_wait_seconds == STEP_UP.max_wait_seconds == 5 * 60
    # The only level a stranger can raise for someone at another address.
    assert ACCOUNT.max_wait_seconds == 60
    assert ACCOUNT.wait_seconds(10_000) == 60


def test_one_address_alone_cannot_reach_the_account_level() -> None:
    """An address adds to the account's level only while its own level is under the pair's
    threshold, and its own level drains slower than the account's: whatever one address
    does, the account's level stays under the account's threshold."""
    assert PAIR.free < ACCOUNT.free
    assert PAIR.drain_per_hour < ACCOUNT.drain_per_hour


@given(
    level=st.floats(min_value=0, max_value=1_000),
    hours=st.floats(min_value=0, max_value=1_000),
)
def test_a_level_drains_steadily_and_never_below_zero(level: float, hours: float) -> None:
    drained = PAIR.drained(level, 0, int(hours * HOUR_US))

    assert 0 <= drained <= level
    assert abs(drained - max(0.0, level - PAIR.drain_per_hour * hours)) < 1e-6


def test_time_before_a_level_was_raised_drains_nothing() -> None:
    assert PAIR.drained(5.0, 10 * HOUR_US, 9 * HOUR_US) == 5.0


def test_an_ipv6_host_is_counted_by_its_slash_64() -> None:
    one = source_key("2001:db8:1:2:aaaa::1")
    other = source_key("2001:db8:1:2:ffff:ffff:ffff:ffff")

    assert one == other == "2001:db8:1:2::/64"
    assert source_key("2001:db8:1:3::1") != one
    assert source_key("::ffff:203.0.113.66") == source_key("203.0.113.66") == "203.0.113.66"
    assert source_key(None) == "-"
    assert source_key("testclient") == "testclient"


def test_usernames_are_kept_hashed_and_case_blind() -> None:
    key = username_key("  Nurse.Wong ")

    assert key == username_key("nurse.wong")
    assert "nurse" not in key and len(key) == 32
    assert username_key("nurse.wong2") != key


def test_step_up_codes_from_every_address_wait_after_ten_up_to_fifteen_minutes() -> None:
    assert [STEP_UP_ACCOUNT.wait_seconds(level) for level in range(8, 13)] == [0, 0, 1, 2, 4]
    assert STEP_UP_ACCOUNT.wait_seconds(10_000) == 15 * 60
    # Ten wrong codes drain in fifteen minutes (once the wait is over).
    assert STEP_UP_ACCOUNT.drained(10.0, 0, 15 * 60 * 1_000_000) == 0.0


def test_registrations_that_register_no_one_wait_after_five_from_three_minutes() -> None:
    waits = [REGISTRATION.wait_seconds(level) for level in range(4, 9)]

    assert waits == [0, 3 * 60, 6 * 60, 12 * 60, 15 * 60]
    # Five misses drain in fifteen minutes: the allowance of the window it replaces.
    assert REGISTRATION.drained(5.0, 0, 15 * 60 * 1_000_000) == 0.0
    assert REGISTRATION.drained(5.0, 0, 14 * 60 * 1_000_000) > 0.0
