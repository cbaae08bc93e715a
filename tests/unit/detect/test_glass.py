"""Break-the-glass sweeps on hand-made grants: more than the limit of distinct patients
in an hour is an alert (high at twice the limit); renewals, refused grants and grants
spread over the day are not."""

from __future__ import annotations

from carevault.detect.glass import GRANTED
from carevault.detect.model import MINUTE_US, Access, Severity
from carevault.detect.signals import Detectors
from tests.unit.detect.test_signals import MORNING, Feed


def _grant(feed: Feed, at_us: int, patient: str, outcome: str = "success") -> None:
    feed.entry(at_us, patient, tag=GRANTED, outcome=outcome, reason="grant g until 1")


def test_more_grants_in_an_hour_than_the_limit_is_an_alert() -> None:
    feed = Feed()
    for n in range(5):
        _grant(feed, MORNING + n * MINUTE_US, f"p{n}")
    assert feed.found == []
    _grant(feed, MORNING + 5 * MINUTE_US, "p5")
    (finding,) = feed.found
    assert (finding.detector, finding.severity) == ("break-glass-volume", Severity.MEDIUM)
    assert finding.patients == tuple(f"p{n}" for n in range(6))
    assert finding.first_position == 0
    for n in range(6, 10):
        _grant(feed, MORNING + n * MINUTE_US, f"p{n}")
    assert feed.found[-1].severity is Severity.HIGH
    assert len({f.dedup_key for f in feed.found}) == 1


def test_renewals_refusals_and_grants_spread_over_the_day_are_not() -> None:
    feed = Feed()
    for n in range(10):
        _grant(feed, MORNING + n * MINUTE_US, "p0")  # one patient, renewed
        _grant(feed, MORNING + n * MINUTE_US, f"refused{n}", outcome="denied")
    for n in range(10):
        _grant(feed, MORNING + n * 70 * MINUTE_US, f"q{n}")  # one every 70 minutes
    assert "break-glass-volume" not in feed.detectors_fired()


def test_the_limit_is_configurable() -> None:
    feed = Feed()
    feed.detectors = Detectors(break_glass_per_hour=2)
    for n in range(3):
        _grant(feed, MORNING + n * MINUTE_US, f"p{n}")
    assert [f.detector for f in feed.found] == ["break-glass-volume"]


def test_replay_rebuilds_the_window_without_raising() -> None:
    feed = Feed()
    detectors = feed.detectors
    for n in range(6):
        replayed = Access(
            position=n, at_us=MORNING + n * MINUTE_US, tag=GRANTED, outcome="success",
            principal="staff:ann", role="physician", patient_pseudonym=f"p{n}",
        )  # fmt: skip
        assert detectors.observe(replayed, feed.state, feed.role, feed.context, live=False) == []
    feed.position = 6
    _grant(feed, MORNING + 6 * MINUTE_US, "p6")
    (finding,) = feed.found
    assert len(finding.patients) == 7


def test_five_grants_an_hour_every_hour_pass_the_days_limit() -> None:
    """Within every hour's limit, but the day's (four hours' worth) is passed at the
    twenty-first patient (adversary round 59, detection evasion)."""
    feed = Feed()
    for n in range(20):
        _grant(feed, MORNING + (n // 5) * 61 * MINUTE_US + (n % 5) * MINUTE_US, f"p{n}")
    assert feed.found == []
    _grant(feed, MORNING + 4 * 61 * MINUTE_US, "p20")
    (finding,) = feed.found
    assert finding.detector == "break-glass-volume"
    assert "within a day" in finding.explanation
    assert len(finding.patients) == 21


def test_the_days_window_forgets_grants_older_than_a_day() -> None:
    feed = Feed()
    for n in range(20):
        _grant(feed, MORNING + (n // 5) * 61 * MINUTE_US + (n % 5) * MINUTE_US, f"p{n}")
    _grant(feed, MORNING + 25 * 60 * MINUTE_US, "p20")  # the first twenty are a day old
    assert feed.found == []
