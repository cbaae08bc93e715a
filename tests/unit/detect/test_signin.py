"""Refused sign-ins counted per source network: a burst from one network is one alert on
that network's case, whichever accounts it named; however many networks and usernames
an attacker uses, the day's alerts are bounded, and so is memory."""

from __future__ import annotations

from carevault.detect.model import HOUR_US, MINUTE_US, Access
from carevault.detect.signin import FAILURES, MOST_SOURCES, TRACKED, SignInFailures
from tests.unit.detect.test_signals import MORNING


def _refused(position: int, at_us: int, address: str, principal: str | None) -> Access:
    return Access(
        position=position, at_us=at_us, tag="auth:session:sign-in-failed",
        outcome="denied", principal=principal, source_address=address,
    )  # fmt: skip


def test_a_burst_from_one_network_is_charged_to_the_network_not_the_accounts() -> None:
    watch = SignInFailures()
    found = []
    for n in range(FAILURES):
        # Two addresses of one /24, naming a real account and usernames no one has.
        address = "203.0.113.7" if n % 2 else "203.0.113.99"
        principal = "staff-account:a1" if n % 3 else None
        found += watch.observe(_refused(n, MORNING + n * MINUTE_US // 2, address, principal), 0)
    (finding,) = found
    assert finding.detector == "sign-in-failures"
    assert finding.subject == "source:203.0.113.0/24"
    assert finding.access.principal == "source:203.0.113.0/24"
    assert "naming 1 account(s) and usernames no one has" in finding.explanation
    assert finding.first_position == 0
    # Slower than ten in ten minutes: nothing.
    slow = SignInFailures()
    assert not [
        f
        for n in range(30)
        for f in slow.observe(_refused(n, MORNING + n * 2 * MINUTE_US, "10.0.0.1", None), 0)
    ]


def test_alerts_a_day_are_bounded_however_many_networks_attack() -> None:
    watch = SignInFailures()
    subjects: set[str] = set()
    position = 0
    for network in range(3 * MOST_SOURCES):
        for n in range(FAILURES):
            at = MORNING + network * MINUTE_US + n
            access = _refused(position, at, f"10.{network}.0.1", f"staff-account:x{network}")
            subjects |= {f.dedup_key for f in watch.observe(access, 0)}
            position += 1
    assert len(subjects) == MOST_SOURCES + 1
    assert any("|source:many|" in key for key in subjects)
    # A replay (after a restart) counts and finds nothing.
    assert (
        watch.observe(_refused(position, MORNING + HOUR_US, "10.0.0.1", None), 0, live=False) == []
    )


def test_memory_is_bounded_however_many_networks_appear() -> None:
    watch = SignInFailures()
    for n in range(TRACKED + 50):
        address = f"2001:db8:{n:x}::1"
        watch.observe(_refused(n, MORNING + n * MINUTE_US, address, None), 0)
        assert len(watch.sources) <= TRACKED


def test_ipv4_peers_of_a_dual_stack_listener_are_their_own_networks() -> None:
    """Ten refusals from ten unrelated IPv4 hosts seen as ``::ffff:a.b.c.d`` were one
    /64's burst (third review of stop 62); each is now its own /24, and no burst."""
    watch = SignInFailures()
    found = []
    for n in range(FAILURES):
        address = f"::ffff:{n + 1}.{n + 7}.{n + 13}.9"
        found += watch.observe(_refused(n, MORNING + n * MINUTE_US // 2, address, None), 0)
    assert found == []
    same = [f"::ffff:203.0.113.{n + 1}" for n in range(FAILURES)]
    for n, address in enumerate(same):
        found += watch.observe(_refused(n, MORNING + n * MINUTE_US // 2, address, None), 0)
    assert [f.subject for f in found] == ["source:203.0.113.0/24"]
