"""Each detector on small hand-made sequences of ledger entries: what fires, what must not."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from carevault.detect.glass import GRANTED
from carevault.detect.model import (
    DAY_US,
    HOUR_US,
    MINUTE_US,
    Access,
    Finding,
    Severity,
    network_of,
)
from carevault.detect.profile import Profile, RoleBaseline
from carevault.detect.signals import AccountState, Context, Detectors

#: 2026-03-03 10:00 in Hong Kong (02:00 UTC): a Tuesday morning.
MORNING = int(datetime(2026, 3, 3, 2, 0, tzinfo=UTC).timestamp() * 1_000_000)


def read_entry(position: int, at_us: int, **fields: object) -> Access:
    """A physician's read of a patient's record (``p0``) at a clinic A workstation, with
    ``fields`` changed."""
    values: dict[str, object] = {
        "tag": "fhir:resource:read",
        "outcome": "success",
        "principal": "staff:ann",
        "role": "physician",
        "clinic_ids": ("clinic-a",),
        "source_address": "10.1.0.20",
        "user_agent": "workstation",
        "resource_type": "Patient",
        "patient_pseudonym": "p0",
    }
    values.update(fields)
    return Access(position=position, at_us=at_us, **values)  # type: ignore[arg-type]


class Feed:
    """One account's entries through the detectors, keeping what they found."""

    def __init__(self, role: str = "physician", profile: Profile | None = None) -> None:
        self.detectors = Detectors()
        self.state = AccountState(profile or Profile(role=role))
        self.role = RoleBaseline()
        self.context = Context()
        self.position = 0
        self.found: list[Finding] = []
        self.role_name = role

    def entry(self, at_us: int, patient: str | None = "p0", **fields: object) -> list[Finding]:
        changed = {"role": self.role_name, "patient_pseudonym": patient, **fields}
        access = read_entry(self.position, at_us, **changed)
        self.position += 1
        found = self.detectors.observe(access, self.state, self.role, self.context)
        self.found.extend(found)
        return found

    def detectors_fired(self) -> set[str]:
        return {finding.detector for finding in self.found}


def test_twenty_one_unexplained_patients_in_ten_minutes_is_breadth() -> None:
    feed = Feed()
    for n in range(21):
        feed.entry(MORNING + n * 20_000_000, f"p{n}")
    breadth = [f for f in feed.found if f.detector == "breadth"]
    assert breadth and breadth[0].severity is Severity.MEDIUM
    assert "21 distinct patients" in breadth[-1].explanation
    assert breadth[-1].first_position == 0


def test_twice_the_limit_is_high() -> None:
    feed = Feed()
    for n in range(41):
        feed.entry(MORNING + n * 10_000_000, f"p{n}")
    assert max(f.severity.rank for f in feed.found if f.detector == "breadth") == (
        Severity.HIGH.rank
    )


def test_explained_patients_never_count() -> None:
    feed = Feed()
    for n in range(200):
        feed.entry(MORNING + n * 5_000_000, f"p{n}", explained=True)
    assert feed.found == []


def test_the_same_patient_again_and_again_is_one_patient() -> None:
    feed = Feed()
    for n in range(300):
        feed.entry(MORNING + n * 1_000_000, f"p{n % 5}")
    assert feed.found == []


def test_a_person_who_usually_reads_many_is_judged_by_their_own_days() -> None:
    busy = Profile(role="physician")
    for day in range(10):
        busy.days[str(day)] = {"all": 60, "unexplained": 40, "10 minutes": 30 + day % 3,
                               "hour": 40, "day": 40}  # fmt: skip
    feed = Feed(profile=busy)
    for n in range(30):
        feed.entry(MORNING + n * 15_000_000, f"p{n}")
    assert "breadth" not in feed.detectors_fired()


def test_opening_a_decoy_is_critical_at_once() -> None:
    feed = Feed()
    feed.context = Context(decoys=frozenset({"decoy-1"}))
    found = feed.entry(MORNING, "decoy-1", explained=True)
    assert [(f.detector, f.severity) for f in found] == [("honeytoken", Severity.CRITICAL)]
    assert feed.entry(MORNING + MINUTE_US, "p1") == []


def test_a_vip_opened_without_care_is_high_but_with_care_is_not() -> None:
    feed = Feed()
    feed.context = Context(vips=frozenset({"star"}))
    assert feed.entry(MORNING, "star", explained=True, near_care=True) == []
    found = feed.entry(MORNING + MINUTE_US, "star")
    assert [(f.detector, f.severity) for f in found] == [("vip", Severity.HIGH)]


def test_more_than_ten_patients_everything_in_an_hour() -> None:
    feed = Feed()
    for n in range(10):
        feed.entry(MORNING + n * MINUTE_US, f"p{n}", tag="fhir:patient:everything", explained=True)
    assert feed.found == []
    feed.entry(MORNING + 11 * MINUTE_US, "p10", tag="fhir:patient:everything", explained=True)
    assert feed.detectors_fired() == {"everything-calls"}
    assert feed.found[0].explanation.startswith("$everything of 11 patients in an hour")


def test_the_pages_of_one_patients_everything_are_one() -> None:
    """Integrator round, stop 65: a client paging one patient's chart two records a page
    (13 pages, each a ledger entry of its own) was revoked for "13 $everything calls";
    a clinician opening a chart again and again is one patient too."""
    feed = Feed()
    for n in range(40):
        feed.entry(MORNING + n * 10_000_000, "p1", tag="fhir:patient:everything", explained=True)
    for n in range(9):
        feed.entry(MORNING + HOUR_US // 2 + n, f"q{n}", tag="fhir:patient:everything",
                   explained=True)  # fmt: skip
    assert feed.found == []


def test_a_burst_of_refusals_and_a_budget_refusal() -> None:
    feed = Feed()
    for n in range(19):
        feed.entry(MORNING + n * 10_000_000, f"p{n}", outcome="denied", reason="no care")
    assert feed.found == []
    feed.entry(MORNING + 200_000_000, "p20", outcome="denied", reason="no care")
    assert feed.detectors_fired() == {"denials"}
    found = feed.entry(MORNING + 300_000_000, None, outcome="denied", reason="release budget: x")
    assert [(f.detector, f.severity) for f in found] == [("release-budget", Severity.HIGH)]


def test_refused_sign_ins_are_no_act_of_the_account_they_name() -> None:
    """Anyone may type a username: failed and throttled sign-ins feed no account's
    windows (``signin`` counts them per source), so they raise neither a burst nor
    ``denials`` against the account named."""
    feed = Feed()
    for n in range(30):
        tag = "auth:session:sign-in-failed" if n < 5 else "auth:session:sign-in-throttled"
        feed.entry(MORNING + n * MINUTE_US // 4, None, tag=tag, outcome="denied",
                   principal="staff-account:a1")  # fmt: skip
    assert feed.found == []


def test_two_places_at_once_but_not_two_desks_of_one_clinic() -> None:
    feed = Feed()
    feed.entry(MORNING, "p1", explained=True, source_address="10.1.0.20")
    feed.entry(MORNING + MINUTE_US, "p2", explained=True, source_address="10.1.0.31")
    assert feed.found == []
    found = feed.entry(MORNING + 2 * MINUTE_US, "p3", explained=True, source_address="203.0.113.9")
    assert [f.detector for f in found] == ["two-places"]


def _office_hours_profile() -> Profile:
    profile = Profile(role="physician", first_us=MORNING - 20 * DAY_US, last_us=MORNING - HOUR_US)
    for day in range(10):
        profile.days[str(day)] = {"all": 20, "unexplained": 1, "10 minutes": 1, "hour": 1, "day": 1}
    for hour in range(9, 19):
        profile.hours[hour] = 40
    profile.addresses["10.1.0.0/24"] = MORNING - HOUR_US
    profile.agents["workstation"] = MORNING - HOUR_US
    return profile


def test_night_time_from_a_new_address_but_not_the_usual_desk_by_day() -> None:
    feed = Feed(profile=_office_hours_profile())
    assert feed.entry(MORNING, "p1", explained=True) == []
    night = MORNING + 17 * HOUR_US  # 03:00 in Hong Kong
    found = feed.entry(night, "p3", explained=True, source_address="198.51.100.7",
                       user_agent="curl")  # fmt: skip
    assert "unusual-hour-new-place" in {f.detector for f in found}


def test_a_known_place_at_an_odd_hour_alone_raises_nothing() -> None:
    feed = Feed(profile=_office_hours_profile())
    night = MORNING + 17 * HOUR_US
    assert feed.entry(night, "p2", explained=True) == []


def test_a_dormant_account_coming_back() -> None:
    profile = _office_hours_profile()
    profile.last_us = MORNING - 30 * DAY_US
    feed = Feed(profile=profile)
    assert [f.detector for f in feed.entry(MORNING, "p1", explained=True)] == ["dormant-account"]
    feed.found.clear()
    assert feed.entry(MORNING + HOUR_US, "p2", explained=True) == []


def test_a_slow_drip_is_found_within_days_and_a_steady_trickle_is_not() -> None:
    drip = Feed(profile=_office_hours_profile())
    steady = Feed(profile=_office_hours_profile())
    drip_day = None
    for day in range(5):
        start = MORNING + day * DAY_US
        for n in range(25):
            drip.entry(start + n * 15 * MINUTE_US, f"d{day}-{n}")
        for n in range(2):
            steady.entry(start + n * HOUR_US, f"s{day}-{n}")
        if drip_day is None and "slow-drip" in drip.detectors_fired():
            drip_day = day
    assert drip_day is not None and drip_day <= 2
    assert "slow-drip" not in steady.detectors_fired()


def test_an_integration_doing_something_new() -> None:
    profile = Profile(role="integration", first_us=MORNING - 5 * DAY_US)
    for day in range(5):
        profile.days[str(day)] = {"all": 100, "unexplained": 100}
    profile.patterns["fhir:resource:create Observation"] = 500
    feed = Feed(role="integration", profile=profile)
    lab = {"principal": "client:lab", "role": "integration"}
    assert feed.entry(MORNING, "p1", tag="fhir:resource:create", resource_type="Observation",
                      explained=True, **lab) == []  # fmt: skip
    feed.entry(MORNING + MINUTE_US, "p2", tag="fhir:resource:read", resource_type="Patient",
               explained=True, **lab)  # fmt: skip
    assert "integration-pattern" in feed.detectors_fired()


def test_replay_rebuilds_windows_but_finds_and_learns_nothing() -> None:
    feed = Feed()
    before = feed.state.profile.to_json()
    for n in range(30):
        access = Access(n, MORNING + n * 1_000_000, "fhir:resource:read", "success", "staff:ann",
                        "physician", patient_pseudonym=f"p{n}")  # fmt: skip
        assert feed.detectors.observe(access, feed.state, feed.role, feed.context, live=False) == []
    assert feed.state.profile.to_json() == before
    assert len(feed.state.recent.breadth["10 minutes"]) == 30
    # The next live entry sees the whole burst.
    found = feed.entry(MORNING + 31_000_000, "p99")
    assert any(f.detector == "breadth" and "31 distinct" in f.explanation for f in found)


def test_entries_of_the_system_are_not_an_account() -> None:
    access = Access(0, MORNING, "fhir:resource:read", "success", "system:seed")
    assert access.account is None
    assert not replace(access, patient_pseudonym="p").released


def _after_step_up(feed: Feed) -> list[Finding]:
    return [f for f in feed.found if f.detector == "after-step-up"]


def test_more_unexplained_patients_than_allowed_after_a_step_up_is_high() -> None:
    feed = Feed()
    feed.detectors = Detectors(after_step_up=3)
    feed.entry(MORNING, "before")  # before the step-up: not counted
    Detectors.stepped_up(feed.state, MORNING + MINUTE_US, position=7)
    for n in range(3):
        feed.entry(MORNING + (2 + n) * MINUTE_US, f"p{n}")
        feed.entry(MORNING + (2 + n) * MINUTE_US, f"mine{n}", explained=True)
    feed.entry(MORNING + 6 * MINUTE_US, "p0")  # the same patient again
    assert _after_step_up(feed) == []
    feed.entry(MORNING + 7 * MINUTE_US, "p3")
    (finding,) = _after_step_up(feed)
    assert finding.severity is Severity.HIGH
    assert sorted(finding.patients) == ["p0", "p1", "p2", "p3"]
    assert finding.first_position == 7  # the step-up's own entry
    assert "4 distinct patients" in finding.explanation


def test_the_watch_lasts_a_day_after_the_latest_step_up() -> None:
    feed = Feed()
    feed.detectors = Detectors(after_step_up=2)
    Detectors.stepped_up(feed.state, MORNING, position=1)
    feed.entry(MORNING + HOUR_US, "p0")
    feed.entry(MORNING + DAY_US + HOUR_US, "p1")  # past the watch: not counted
    feed.entry(MORNING + DAY_US + 2 * HOUR_US, "p2")
    assert _after_step_up(feed) == []
    # A new step-up starts a new watch; one within it extends the watch, and the count
    # (two patients) goes on past the first step-up's day.
    Detectors.stepped_up(feed.state, MORNING + 2 * DAY_US, position=2)
    feed.entry(MORNING + 2 * DAY_US + HOUR_US, "q0")
    Detectors.stepped_up(feed.state, MORNING + 2 * DAY_US + 20 * HOUR_US, position=3)
    feed.entry(MORNING + 3 * DAY_US + 10 * HOUR_US, "q1")
    assert _after_step_up(feed) == []
    feed.entry(MORNING + 3 * DAY_US + 11 * HOUR_US, "q2")
    (finding,) = _after_step_up(feed)
    assert sorted(finding.patients) == ["q0", "q1", "q2"] and finding.first_position == 2


def test_no_watch_without_a_step_up() -> None:
    feed = Feed()
    feed.detectors = Detectors(after_step_up=1)
    for n in range(10):
        feed.entry(MORNING + n * HOUR_US, f"p{n}")
    assert _after_step_up(feed) == []


def test_a_vip_opened_far_from_any_visit_of_the_clinic_is_medium() -> None:
    feed = Feed()
    feed.context = Context(vips=frozenset({"star"}))
    # The clinic's care covers the look, but months from a visit, naming no one: medium.
    (far,) = feed.entry(MORNING, "star", explained=True)
    assert (far.detector, far.severity) == ("vip", Severity.MEDIUM)
    # Near a visit, or on care that names the person: nothing.
    assert feed.entry(MORNING + MINUTE_US, "star", explained=True, near_care=True) == []
    # No care at all: high.
    (none,) = feed.entry(MORNING + 2 * MINUTE_US, "star")
    assert (none.detector, none.severity) == ("vip", Severity.HIGH)


def test_a_client_app_reading_a_vip_under_the_clinics_care_is_not_judged_by_distance() -> None:
    feed = Feed(role="integration")
    feed.context = Context(vips=frozenset({"star"}))
    assert feed.entry(MORNING, "star", explained=True, principal="client:lab") == []


def test_the_watch_does_not_count_patients_the_account_created_itself() -> None:
    # A desk whose alert was false registers the day's new patients and books them: it
    # wrote what those records hold. A patient it did not create counts as ever.
    feed = Feed(role="front_desk")
    feed.detectors = Detectors(after_step_up=2)
    Detectors.stepped_up(feed.state, MORNING, position=1)
    created = {"tag": "fhir:resource:create", "detail": {"version": 1}}
    for n in range(5):
        feed.entry(MORNING + n * MINUTE_US, f"new{n}", **created)
        feed.entry(MORNING + n * MINUTE_US + 1, f"new{n}")
    feed.entry(MORNING + DAY_US - HOUR_US, "new0")  # the next morning too
    assert _after_step_up(feed) == []
    feed.entry(MORNING + 10 * MINUTE_US, "p0", **created, outcome="denied")
    # A deleted patient written back at its id: a create to R4, not a new patient.
    feed.entry(MORNING + 10 * MINUTE_US, "p1", tag="fhir:resource:create", detail={"version": 3})
    for n in range(3):
        feed.entry(MORNING + (11 + n) * MINUTE_US, f"p{n}")
    (finding,) = _after_step_up(feed)
    assert sorted(finding.patients) == ["p0", "p1", "p2"]


def test_a_break_the_glass_grant_counts_in_the_watch_after_a_step_up() -> None:
    # The reads under a grant are explained: the grant itself is what the watch counts.
    feed = Feed()
    feed.detectors = Detectors(after_step_up=2)
    Detectors.stepped_up(feed.state, MORNING, position=1)
    for n in range(3):
        at = MORNING + (1 + n) * MINUTE_US
        feed.entry(at, f"g{n}", tag=GRANTED, resource_type=None)
        feed.entry(at, f"g{n}", explained=True, purpose="ETREAT")
    (finding,) = _after_step_up(feed)
    assert sorted(finding.patients) == ["g0", "g1", "g2"]
    assert "break-glass-volume" not in feed.detectors_fired()  # 3 an hour: under its limit


def test_the_watch_allows_the_accounts_own_usual_day() -> None:
    # A front desk that lists about a hundred patients a day no care explains (names at
    # the counter) goes on after a false alert; past its usual day, it is reading on.
    usual = {str(20_000 + n): {"unexplained": 95 + n % 10} for n in range(10)}
    feed = Feed(role="front_desk", profile=Profile(role="front_desk", days=usual))
    feed.detectors = Detectors(after_step_up=20)
    Detectors.stepped_up(feed.state, MORNING, position=1)
    for n in range(90):
        feed.entry(MORNING + n * 30_000_000, f"p{n}")
    assert _after_step_up(feed) == []
    for n in range(90, 160):
        feed.entry(MORNING + n * 30_000_000, f"p{n}")
    finding = _after_step_up(feed)[0]
    assert "usual peak" in finding.explanation and finding.severity is Severity.HIGH


def test_a_front_desk_looking_up_a_vip_without_care_is_medium() -> None:
    # The desk looks up whoever calls to book before the booking exists, and sees no
    # clinical data: the officer judges it; anyone else's look is high.
    desk = Feed(role="front_desk")
    desk.context = Context(vips=frozenset({"star"}))
    (found,) = desk.entry(MORNING, "star", role="front_desk")
    assert (found.detector, found.severity) == ("vip", Severity.MEDIUM)


def _booked_alone(feed: Feed, at_us: int, patient: str, made_us: int) -> None:
    """A read that only care another account made alone (at ``made_us``) explains."""
    feed.entry(at_us, patient, explained=True, made_alone=(1,), care_made_us=made_us)


def test_a_watched_account_reading_through_another_accounts_bookings_since_is_high() -> None:
    # A second (phished or colluding) account books every patient after the step-up:
    # its bookings explain the reads to everyone but the watch.
    feed = Feed(role="nurse")
    feed.detectors = Detectors(after_step_up=3)
    Detectors.stepped_up(feed.state, MORNING, position=5)
    for n in range(3):
        _booked_alone(feed, MORNING + (2 + n) * MINUTE_US, f"p{n}", MORNING + MINUTE_US)
    assert _after_step_up(feed) == []
    _booked_alone(feed, MORNING + 6 * MINUTE_US, "p3", MORNING + MINUTE_US)
    (finding,) = _after_step_up(feed)
    assert finding.severity is Severity.HIGH and finding.first_position == 5
    assert sorted(finding.patients) == ["p0", "p1", "p2", "p3"]
    assert "4 of them explained only by care another account made alone" in (finding.explanation)


def test_bookings_made_before_the_step_up_are_not_counted_by_the_watch() -> None:
    # The nurse after a false alert reads the patients booked for her: care the desk
    # made alone, but before her watch began.
    feed = Feed(role="nurse")
    feed.detectors = Detectors(after_step_up=3)
    Detectors.stepped_up(feed.state, MORNING, position=5)
    for n in range(30):
        _booked_alone(feed, MORNING + (1 + n) * MINUTE_US, f"p{n}", MORNING - HOUR_US)
        feed.entry(MORNING + (1 + n) * MINUTE_US, f"seen{n}", explained=True)
    assert _after_step_up(feed) == []


def test_a_watched_nurse_reads_her_usual_day_of_walk_ins_booked_after_the_step_up() -> None:
    # Walk-ins the desk books through the day after a false alert: counted, but against
    # her usual day of patients altogether (about 30), not her few unexplained ones.
    usual = {str(20_000 + n): {"all": 28 + n % 5, "unexplained": 1} for n in range(10)}
    feed = Feed(role="nurse", profile=Profile(role="nurse", days=usual))
    feed.detectors = Detectors(after_step_up=3)
    Detectors.stepped_up(feed.state, MORNING, position=5)
    for n in range(30):
        at = MORNING + (1 + n) * 10 * MINUTE_US
        _booked_alone(feed, at, f"walk-in{n}", at - 15 * MINUTE_US)
    feed.entry(MORNING + 6 * HOUR_US, "unexplained")
    assert _after_step_up(feed) == []
    for n in range(30, 60):
        at = MORNING + 6 * HOUR_US + n * MINUTE_US
        _booked_alone(feed, at, f"walk-in{n}", at - MINUTE_US)
    finding = _after_step_up(feed)[0]
    assert "usual peak" in finding.explanation and "its usual day of patients" in (
        finding.explanation
    )


def test_unexplained_reads_keep_their_own_allowance_beside_fresh_care() -> None:
    # Care booked since does not widen what the watch allows of unexplained reads.
    usual = {str(20_000 + n): {"all": 40, "unexplained": 1} for n in range(10)}
    feed = Feed(role="nurse", profile=Profile(role="nurse", days=usual))
    feed.detectors = Detectors(after_step_up=3)
    Detectors.stepped_up(feed.state, MORNING, position=5)
    _booked_alone(feed, MORNING + MINUTE_US, "walk-in", MORNING)
    for n in range(12):
        feed.entry(MORNING + (2 + n) * MINUTE_US, f"p{n}")
    finding = _after_step_up(feed)[0]
    assert "without a care relationship" in finding.explanation
    assert "walk-in" in finding.patients  # what it opened since the step-up, all of it


def test_a_nurse_whose_watch_is_extended_reads_two_ordinary_days_of_walk_ins() -> None:
    # A nurse at a walk-in clinic: about 30 patients a day, each booked by the desk
    # minutes before she opens them (care the desk made alone, after her step-up).
    usual = {str(20_000 + n): {"all": 28 + n % 5, "unexplained": 1} for n in range(10)}
    feed = Feed(role="nurse", profile=Profile(role="nurse", days=usual))
    Detectors.stepped_up(feed.state, MORNING, position=5)  # a false alert at 10:00
    for n in range(28):
        at = MORNING + n * 15 * MINUTE_US
        _booked_alone(feed, at, f"day1-walk-in{n}", at - 10 * MINUTE_US)
    # Next morning a second false alert (the same new workstation) extends the watch.
    Detectors.stepped_up(feed.state, MORNING + DAY_US - HOUR_US, position=6)
    for n in range(28):
        at = MORNING + DAY_US + n * 15 * MINUTE_US
        _booked_alone(feed, at, f"day2-walk-in{n}", at - 10 * MINUTE_US)
    # An ordinary second day (28 patients, fewer than her usual 30) raises nothing.
    assert _after_step_up(feed) == []
    # The same day read on through a second account's bookings: counted day by day, the
    # day's bookings past her usual day are an alert.
    for n in range(12):
        at = MORNING + DAY_US + (28 * 15 + n) * MINUTE_US
        _booked_alone(feed, at, f"day2-more{n}", at - MINUTE_US)
    findings = _after_step_up(feed)
    assert findings, "a second day read on past the usual day is an alert"
    assert "care another account made alone" in findings[0].explanation


def _downloaded(feed: Feed, address: str, asked_from: str | None) -> list[Finding]:
    detail: dict[str, object] = {"job": "job-1", "file": "000001-Patient.ndjson"}
    if asked_from is not None:
        detail["asked_from"] = asked_from
    return feed.entry(
        MORNING,
        None,
        tag="bulk:export:downloaded",
        principal="client:exporter",
        client_id="exporter",
        resource_type=None,
        source_address=address,
        detail=detail,
    )


def test_an_export_file_fetched_from_another_network_is_high() -> None:
    """Asked for from 10.1.0.0/24, fetched from 203.0.113.0/24: ``export-download``."""
    found = _downloaded(Feed(role="integration"), "203.0.113.7", "10.1.0.20")
    assert [(f.detector, f.severity) for f in found] == [("export-download", Severity.HIGH)]
    assert "job-1" in found[0].explanation and "203.0.113.0/24" in found[0].explanation


def test_an_export_file_fetched_from_its_own_network_or_unknown_one_raises_nothing() -> None:
    feed = Feed(role="integration")
    assert _downloaded(feed, "10.1.0.99", "10.1.0.20") == []
    assert _downloaded(feed, "203.0.113.7", None) == []


def _registered(feed: Feed, **detail: object) -> list[Finding]:
    return feed.entry(
        MORNING,
        "p9",
        tag="fhir:patient:registered",
        role="front_desk",
        reason="registered on proof of presence",
        detail={"clinic": "clinic-a", "proof": "hkid", **detail},
    )


def test_registering_a_patient_whose_home_the_clinic_once_was_is_low() -> None:
    found = _registered(Feed(role="front_desk"), home_before=True)
    assert [(f.detector, f.severity, f.patients) for f in found] == [
        ("re-registration", Severity.LOW, ("p9",))
    ]
    assert _registered(Feed(role="front_desk")) == []


def test_ipv4_clients_of_a_dual_stack_listener_are_judged_by_their_ipv4_network() -> None:
    """``::ffff:a.b.c.d`` is an IPv4 peer: its /24, not the one /64 all such share
    (which made a fetch from anywhere 'its own network'; review of stop 62)."""
    found = _downloaded(Feed(role="integration"), "::ffff:203.0.113.7", "::ffff:10.1.0.20")
    assert [f.detector for f in found] == ["export-download"]
    assert "203.0.113.0/24" in found[0].explanation
    assert _downloaded(Feed(role="integration"), "::ffff:10.1.0.99", "10.1.0.20") == []


def test_a_fetch_over_the_other_address_family_is_high_and_says_so() -> None:
    """A thief holding the secret picks the family it fetches over: the low alert the
    second review asked for was an evasion (third review); high, saying it may be the
    same host, for the officer who lifts a dual-stack client's revocation."""
    for fetched, asked in (("10.1.0.20", "2001:db8:1::20"), ("2001:db8:dead::1", "10.1.0.20")):
        found = _downloaded(Feed(role="integration"), fetched, asked)
        assert [(f.detector, f.severity) for f in found] == [("export-download", Severity.HIGH)]
        assert "another address family" in found[0].explanation


def test_ipv4_carried_in_ipv6_is_judged_by_its_ipv4_network() -> None:
    """6to4, Teredo and NAT64 carry an IPv4 address: its /24, so a fetch through any of
    them from elsewhere is found, and from the asking network is not."""
    assert network_of("2002:cb00:7107::1") == "203.0.113.0/24"
    assert network_of("2001:0:4136:e378:8000:63bf:3fff:fdd2") == "192.0.2.0/24"
    assert network_of("64:ff9b::cb00:7107") == "203.0.113.0/24"
    assert network_of("2001:db8:1::20") == "2001:db8:1::/64"
    assert network_of("testclient") is None
    found = _downloaded(Feed(role="integration"), "64:ff9b::cb00:7107", "64:ff9b::a01:14")
    assert [f.detector for f in found] == ["export-download"]
    assert _downloaded(Feed(role="integration"), "2002:a01:14::1", "10.1.0.99") == []


def _by_hand(feed: Feed, n: int, tag: str, **fields: object) -> list[Finding]:
    """The ``n``-th change by hand of the hour: a new patient each, a minute apart."""
    return feed.entry(MORNING + n * MINUTE_US, f"p{n}", tag=tag, role="privacy_officer", **fields)


def test_more_changes_by_hand_in_an_hour_than_an_officer_makes_is_medium() -> None:
    """An officer's registrations, registrations ended, identifiers removed and transfers
    together: the eleventh in an hour raises ``officer-changes`` (no detector weighed
    them: left open at stop 62)."""
    feed = Feed(role="privacy_officer")
    kinds = [
        (
            "fhir:patient:registered",
            {
                "reason": "registered on the privacy officer's confirmation: identity-confirmed",
                "detail": {"clinic": "clinic-a", "proof": "officer"},
            },
        ),
        (
            "fhir:patient:unregistered",
            {"reason": "registration ended: compromised-account", "detail": {"clinic": "clinic-a"}},
        ),
        ("fhir:patient:identifier-removed", {"reason": "mistyped", "detail": {"why": "mistyped"}}),
        ("fhir:patient:transferred", {"reason": "patient-moved", "detail": {"to": "clinic-a"}}),
    ]
    found: list[Finding] = []
    for n in range(11):
        tag, fields = kinds[n % len(kinds)]
        found = _by_hand(feed, n, tag, **fields)
        if n < 10:
            assert found == [], n
    assert [(f.detector, f.severity) for f in found] == [("officer-changes", Severity.MEDIUM)]
    assert "11 registrations on confirmation" in found[0].explanation


def test_what_changed_nothing_is_no_change_by_hand() -> None:
    """Registrations already there, registrations not there to end, a desk's ordinary
    registration on proof of presence and refused attempts are not counted."""
    feed = Feed(role="privacy_officer")
    found: list[Finding] = []
    for n in range(12):
        found += _by_hand(
            feed,
            n,
            "fhir:patient:registered",
            reason="already registered",
            detail={"clinic": "clinic-a", "proof": "officer"},
        )
        found += _by_hand(feed, n, "fhir:patient:unregistered", reason="not registered there")
        found += _by_hand(feed, n, "fhir:patient:transferred", outcome="denied", reason="no")
        found += _by_hand(
            feed,
            n,
            "fhir:patient:registered",
            reason="registered on proof of presence",
            detail={"clinic": "clinic-a", "proof": "hkid"},
        )
    assert [f.detector for f in found if f.detector == "officer-changes"] == []


def test_an_officer_shown_many_patients_notices_in_full_is_breadth() -> None:
    """``notify preview --patient`` prints a patient's identity, contact details and
    what the notice says was exposed: a release like an access report, counted with the
    officer's other unexplained patients (left open since stop 60: a stolen officer's
    login printing a preview every fresh code, 120 patients an hour, raised nothing)."""
    feed = Feed(role="privacy_officer")
    for n in range(61):
        feed.entry(
            MORNING + n * 30_000_000,
            f"p{n}",
            tag="notify:preview:shown",
            resource_type="Patient",
            reason="incident inc-1",
        )
    breadth = [f for f in feed.found if f.detector == "breadth"]
    assert breadth, feed.found
    assert "61 distinct patients" in breadth[-1].explanation
    assert "in one hour" in breadth[-1].explanation


def test_the_clinicians_words_shown_in_a_review_queue_are_not_breadth() -> None:
    """The review queue shows the words of every grant it lists at once: an officer
    opening a busy week's queue is shown many patients' grants without choosing any
    (the queue is bounded by the grants clinicians made, each in the ledger and in the
    scope of an incident on the officer)."""
    feed = Feed(role="privacy_officer")
    for n in range(300):
        feed.entry(MORNING + n * 1_000_000, f"p{n}", tag="access:break-glass:shown")
    assert [f for f in feed.found if f.detector == "breadth"] == []


def test_a_billing_clerk_paging_patients_care_explains_is_breadth() -> None:
    """Care explains a clinician's reads, not a billing clerk's: a billing login paging
    every patient the clinic booked today took 400 in a second with no alert (adversary
    round 81). The clerk's explained patients count towards ``breadth`` as unexplained
    ones do, against the billing floors (80 in ten minutes)."""
    feed = Feed(role="billing")
    for n in range(81):
        feed.entry(MORNING + n * 1_000_000, f"p{n}", explained=True)
    breadth = [f for f in feed.found if f.detector == "breadth"]
    assert breadth, feed.found
    assert "81 distinct patients" in breadth[-1].explanation
    assert "care relationship or not" in breadth[-1].explanation


def test_a_client_paging_patients_care_explains_is_breadth() -> None:
    """A stolen integration client's secret likewise (round 81: 400 patients the desk
    had booked, no alert): the 301st in ten minutes passes the integration floor."""
    feed = Feed(role="integration")
    for n in range(301):
        feed.entry(
            MORNING + n * 1_000_000,
            f"p{n}",
            explained=True,
            principal="client:lab-feed",
            client_id="lab-feed",
        )
    assert [f.severity for f in feed.found if f.detector == "breadth"][:1] == [Severity.MEDIUM]


def test_a_clinician_reading_patients_care_explains_is_not_breadth() -> None:
    """A clinician's explained reads still do not count (their clinic's care is their
    work): the change is for the roles whose work is not care."""
    for role in ("physician", "nurse", "front_desk", "pharmacist", "clinic_manager"):
        feed = Feed(role=role)
        for n in range(300):
            feed.entry(MORNING + n * 1_000_000, f"p{n}", explained=True)
        assert [f for f in feed.found if f.detector == "breadth"] == [], role


def test_a_billing_login_past_a_step_up_reading_booked_patients_is_watched() -> None:
    """Stepped up (a medium ``breadth``'s response) and past it with a phished seed, a
    billing login read 300 booked patients over ten hours, under every billing floor,
    and the watch after the step-up counted none (review of stop 64): it counts them as
    it counts unexplained ones, and raises ``after-step-up``."""
    feed = Feed(role="billing")
    Detectors.stepped_up(feed.state, MORNING, position=1)
    for n in range(300):
        feed.entry(MORNING + MINUTE_US + n * 2 * MINUTE_US, f"p{n}", explained=True)
    assert "after-step-up" in feed.detectors_fired(), feed.detectors_fired()


def test_a_billing_login_dripping_booked_patients_is_a_slow_drip() -> None:
    """Sixty booked patients a day beyond a billing login's usual ten, one every eight
    minutes (under every ``breadth`` floor), day after day: ``slow-drip`` within the
    week, as for the same reads unexplained (review of stop 64)."""
    profile = Profile(role="billing", first_us=MORNING - 20 * DAY_US, last_us=MORNING - HOUR_US)
    for day in range(10):
        profile.days[str(day)] = {"all": 10, "unexplained": 1, "10 minutes": 2, "hour": 5,
                                  "day": 10}  # fmt: skip
    for hour in range(9, 19):
        profile.hours[hour] = 40
    profile.addresses["10.1.0.0/24"] = MORNING - HOUR_US
    profile.agents["workstation"] = MORNING - HOUR_US
    feed = Feed(role="billing", profile=profile)
    for day in range(6):
        for n in range(60):
            feed.entry(MORNING + day * DAY_US + n * 8 * MINUTE_US, f"d{day}-{n}", explained=True)
    assert "slow-drip" in feed.detectors_fired(), feed.detectors_fired()
