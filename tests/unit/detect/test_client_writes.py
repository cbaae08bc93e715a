"""The write-volume signal: records an integration client writes per hour, against a
floor and its own usual peak; staff writes and reads are not counted by it."""

from __future__ import annotations

from carevault.detect.model import DAY_US, HOUR_US, Severity
from carevault.detect.profile import Profile
from tests.unit.detect.test_signals import MORNING, Feed

CREATE = "fhir:resource:create"


def client_feed(floor: int = 50, profile: Profile | None = None) -> Feed:
    feed = Feed("integration", profile)
    feed.detectors.client_writes_per_hour = floor
    return feed


def write(feed: Feed, at_us: int, n: int, **fields: object) -> None:
    feed.entry(
        at_us,
        f"p{n}",
        tag=CREATE,
        principal="client:lab-feed",
        client_id="lab-feed",
        resource_type="Observation",
        **fields,
    )


def test_a_client_writing_past_the_floor_in_an_hour_raises_client_writes() -> None:
    feed = client_feed(50)
    for n in range(50):
        write(feed, MORNING + n * 1_000_000, n)
    assert "client-writes" not in feed.detectors_fired()
    write(feed, MORNING + 50 * 1_000_000, 50)
    [found] = [f for f in feed.found if f.detector == "client-writes"]
    assert found.severity is Severity.MEDIUM
    assert found.explanation.startswith("wrote 51 records in one hour")
    assert found.patients == () and found.first_position == 0
    for n in range(51, 100):
        write(feed, MORNING + n * 1_000_000, n)
    assert feed.found[-1].severity is Severity.HIGH  # twice the limit


def test_writes_spread_over_hours_stay_below_the_floor() -> None:
    feed = client_feed(50)
    for n in range(200):
        write(feed, MORNING + n * (HOUR_US // 40), n)
    assert "client-writes" not in feed.detectors_fired()


def test_a_clients_own_usual_peak_raises_its_limit() -> None:
    """A feed that writes 300 records in its busiest hour every day is not alerted on at
    300; well above its usual peak it is."""
    usual = Profile(role="integration", writes={str(d): 300 + d % 3 for d in range(10)})
    feed = client_feed(50, usual)
    for n in range(305):
        write(feed, MORNING + n * 100_000, n)
    assert "client-writes" not in feed.detectors_fired()
    for n in range(305, 700):
        write(feed, MORNING + n * 100_000, n)
    assert "client-writes" in feed.detectors_fired()
    assert "usual peak" in feed.found[-1].explanation


def test_each_days_peak_is_kept_for_the_baseline() -> None:
    feed = client_feed(1000)
    for n in range(30):
        write(feed, MORNING + n * 1_000_000, n)
    feed.entry(MORNING + DAY_US, "p0", principal="client:lab-feed", client_id="lab-feed")
    assert list(feed.state.profile.writes.values()) == [30]
    assert feed.role.samples["writes hour"] == [30]


def test_staff_writes_and_refused_writes_are_not_counted() -> None:
    feed = client_feed(5)
    for n in range(20):
        feed.entry(MORNING + n * 1_000_000, f"p{n}", tag=CREATE, role="physician")
    client = client_feed(5)
    for n in range(20):
        write(client, MORNING + n * 1_000_000, n, outcome="denied")
    assert "client-writes" not in feed.detectors_fired() | client.detectors_fired()
