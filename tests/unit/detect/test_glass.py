"""Break-the-glass sweeps on hand-made grants: more than the limit of distinct patients
in an hour is an alert (high at twice the limit), or four hours' worth in a day, or two
days' worth in a week; renewals, refused grants, grants spread over the day and a doctor
covering a colleague's clinic one or two days a week are not. And what a grant explains
it still tells: a VIP or close kin opened under one is a low alert."""

from __future__ import annotations

import json

from carevault.detect.glass import GRANTED, UNDER_GRANT, WEEK_US, GrantWeek
from carevault.detect.kin import CO_WORKER
from carevault.detect.model import DAY_US, HOUR_US, MINUTE_US, Access, Severity
from carevault.detect.profile import Profile
from carevault.detect.signals import Context, Detectors
from carevault.fhir.kinship import HOUSEHOLD, SURNAME
from tests.unit.detect.test_signals import MORNING, Feed, read_entry


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
            position=n,
            at_us=MORNING + n * MINUTE_US,
            tag=GRANTED,
            outcome="success",
            principal="staff:ann",
            role="physician",
            patient_pseudonym=f"p{n}",
        )
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


def _nineteen_a_day(feed: Feed, days: int, first: int = 0) -> None:
    """One grant every 76 minutes: 19 in any 24 hours, one in any hour."""
    for n in range(first, first + days * 19):
        _grant(feed, MORNING + n * 76 * MINUTE_US, f"p{n}")


def test_nineteen_grants_a_day_every_day_pass_the_weeks_limit_on_the_third_day() -> None:
    """Within every hour's five and every day's twenty; the week allows two days' worth
    (40): the 41st patient in seven days is a sweep (adversary round 60, grants)."""
    feed = Feed()
    _nineteen_a_day(feed, 2)
    _grant(feed, MORNING + 38 * 76 * MINUTE_US, "p38")
    _grant(feed, MORNING + 39 * 76 * MINUTE_US, "p39")
    assert feed.found == []
    _grant(feed, MORNING + 40 * 76 * MINUTE_US, "p40")
    (finding,) = feed.found
    assert (finding.detector, finding.severity) == ("break-glass-volume", Severity.MEDIUM)
    assert "41 distinct patients within a week (more than 40)" in finding.explanation
    assert finding.first_position == 0
    assert len(finding.patients) == 41


def test_the_week_is_high_at_twice_its_limit() -> None:
    feed = Feed()
    _nineteen_a_day(feed, 5)
    assert feed.found[-1].severity is Severity.HIGH  # 95 patients, past 80
    assert "within a week" in feed.found[-1].explanation


def _covering(feed: Feed, days: list[int], per_day: int = 19) -> None:
    """Covering a colleague's clinic on ``days``: ``per_day`` new patients a day, five
    an hour from nine o'clock."""
    seen = 0
    for day in days:
        for n in range(per_day):
            at = MORNING + day * DAY_US + (n // 5) * HOUR_US + (n % 5) * MINUTE_US
            _grant(feed, at, f"p{seen}")
            seen += 1


def test_covering_one_or_two_days_a_week_for_a_month_raises_nothing() -> None:
    one, two = Feed(), Feed()
    _covering(one, [0, 7, 14, 21, 28], per_day=20)
    _covering(two, [0, 3, 7, 10, 14, 17, 21, 24, 28])
    assert one.found == []
    assert two.found == []


def test_a_third_covering_day_in_a_week_is_a_sweep() -> None:
    feed = Feed()
    _covering(feed, [0, 3, 5])
    assert feed.detectors_fired() == {"break-glass-volume"}
    assert "within a week" in feed.found[0].explanation


def test_the_week_is_kept_in_the_stored_profile() -> None:
    """A restart loads the profile as stored (the replay covers a day and an hour): the
    week's grants are there, and replaying the last day again counts none twice."""
    feed = Feed()
    _nineteen_a_day(feed, 2)
    stored = Profile.from_json(json.loads(json.dumps(feed.state.profile.to_json())))
    assert len(stored.glass_week) == 38
    again = Feed(profile=stored)
    for n in range(20, 38):  # the replay: the last 25 hours, judged again
        replayed = read_entry(
            n,
            MORNING + n * 76 * MINUTE_US,
            tag=GRANTED,
            patient_pseudonym=f"p{n}",
            reason="grant g until 1",
        )
        assert (
            again.detectors.observe(replayed, again.state, again.role, again.context, live=False)
            == []
        )
    again.position = 38
    _grant(again, MORNING + 38 * 76 * MINUTE_US, "p38")
    _grant(again, MORNING + 39 * 76 * MINUTE_US, "p39")
    assert again.found == []
    _grant(again, MORNING + 40 * 76 * MINUTE_US, "p40")
    (finding,) = again.found
    assert "41 distinct patients within a week" in finding.explanation


def test_the_week_forgets_grants_older_than_seven_days() -> None:
    held: dict[str, list[int]] = {}
    week = GrantWeek(held)
    assert week.add("p0", MORNING, 0) == 1
    assert week.add("p0", MORNING - HOUR_US, 0) == 1  # an older grant of a patient held
    assert held["p0"] == [MORNING, 0]
    assert week.add("p1", MORNING + WEEK_US - 1, 1) == 2
    assert week.add("p2", MORNING + WEEK_US, 2) == 2  # p0 is a week old
    assert week.keys == ["p1", "p2"] and week.first_position == 1


def test_a_persons_week_is_every_logins_latest_grant() -> None:
    ann = {"p0": [MORNING, 0], "p1": [MORNING + HOUR_US, 3]}
    bob = {"p1": [MORNING + 2 * HOUR_US, 5], "p2": [MORNING - WEEK_US, 1]}
    together = GrantWeek.together([ann, bob], MORNING + 3 * HOUR_US)
    assert together.held == {"p0": [MORNING, 0], "p1": [MORNING + 2 * HOUR_US, 5]}
    assert ann == {"p0": [MORNING, 0], "p1": [MORNING + HOUR_US, 3]}  # not changed


def test_a_vip_or_kin_opened_under_a_grant_is_low() -> None:
    feed = Feed()
    feed.context = Context(vips=frozenset({"star"}))
    granted_read = {"explained": True, "near_care": True, "under_grant": True}
    found = feed.entry(MORNING, "star", **granted_read)
    assert [(f.detector, f.severity) for f in found] == [("vip", Severity.LOW)]
    kin = feed.entry(
        MORNING + MINUTE_US, "kin", kin=(CO_WORKER, HOUSEHOLD, SURNAME), **granted_read
    )
    assert [(f.detector, f.severity) for f in kin] == [
        ("co-worker", Severity.LOW),
        ("same-address", Severity.LOW),
    ]
    assert {f.detector for f in feed.found} <= UNDER_GRANT
    # One alert per account, patient (or kind) and day; apart from the high ones.
    assert found[0].dedup_key != feed.entry(MORNING + 2 * MINUTE_US, "star")[0].dedup_key


def test_a_patient_not_marked_vip_under_a_grant_and_vips_with_care_are_not() -> None:
    feed = Feed()
    feed.context = Context(vips=frozenset({"star"}))
    assert feed.entry(MORNING, "p1", explained=True, near_care=True, under_grant=True) == []
    assert feed.entry(MORNING, "star", explained=True, near_care=True) == []
