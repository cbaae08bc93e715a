"""``slow-drip`` across the logins of one practitioner (``detect.drip``): half a drip
through each of two logins is a drip of the person's."""

from __future__ import annotations

from carevault.detect.drip import closed_days, person_cusum, today
from carevault.detect.model import DAY_US, MINUTE_US, Finding
from carevault.detect.profile import Profile, Recent
from carevault.detect.signals import Context
from tests.unit.detect.test_person_breadth import LOGINS, People
from tests.unit.detect.test_signals import MORNING

#: The local day of ``MORNING`` (Hong Kong).
TODAY = (MORNING + Context().offset_us) // DAY_US


def _quiet(days: int = 20, per_day: int = 3, *, drip: int = 0, drip_days: int = 0) -> Profile:
    """A physician's profile: ``days`` closed days of ``per_day`` patients no care
    explains, then ``drip_days`` of ``drip``, the last of them yesterday."""
    profile = Profile(role="physician", first_us=MORNING - 40 * DAY_US, last_us=MORNING - DAY_US)
    first = TODAY - days - drip_days
    for index in range(days + drip_days):
        count = per_day if index < days else drip
        profile.days[str(first + index)] = {"all": count, "unexplained": count}
    return profile


def _day(people: People, day: int, per_login: int) -> list[Finding]:
    """Each login reads ``per_login`` patients no care explains, on ``day`` days after
    ``MORNING``'s, one every quarter of an hour."""
    at = MORNING + day * DAY_US
    found: list[Finding] = []
    for index, login in enumerate(people.states):
        for n in range(per_login):
            found += people.read(login, f"d{day}-{index}-{n}", at)
            at += 15 * MINUTE_US
    return found


def _drips(found: list[Finding]) -> list[Finding]:
    return [f for f in found if f.detector == "slow-drip"]


def test_eight_a_day_through_each_of_two_logins_is_the_persons_drip() -> None:
    """Each login's usual day is 3; 8 a day is within its slack (target 3 + 4), so
    neither login drips alone. Together the usual day is 6 and 16 a day runs 6 above
    its slack: past the threshold of 30 on the sixth day."""
    people = People(profile=_quiet)
    alarmed = None
    for day in range(8):
        found = _drips(_day(people, day, 8))
        if found and alarmed is None:
            alarmed = day
            first = found[0]
            assert first.period == f"{TODAY + day} person"
            assert "wong-a, wong-b" in first.explanation
            assert "usual 6 a day" in first.explanation and "> 30" in first.explanation
            # What the total is, not how long it took ("for days" told a client minutes
            # old it had run high for days: integrator round 72).
            assert "excess over the usual, added up" in first.explanation
            assert "for days" not in first.explanation
            # Named: the patients of today of both logins.
            assert any(p.startswith(f"d{day}-0-") for p in first.patients)
            assert any(p.startswith(f"d{day}-1-") for p in first.patients)
    assert alarmed == 5
    assert all(f.period.endswith(" person") for f in _drips(people.found))


def test_the_same_reads_by_two_people_are_no_drip() -> None:
    people = People(linked=False, profile=_quiet)
    for day in range(8):
        _day(people, day, 8)
    assert _drips(people.found) == []


def test_a_login_dripping_alone_raises_its_own_finding() -> None:
    """One login reads 16 a day: its own CUSUM (usual 3) alarms first, and the person's
    finding stays quiet while it does."""
    people = People(profile=_quiet)
    for day in range(6):
        at = MORNING + day * DAY_US
        for n in range(16):
            people.read(LOGINS[0], f"d{day}-{n}", at)
            at += 15 * MINUTE_US
    drips = _drips(people.found)
    assert drips and all(f.period.isdigit() for f in drips)
    assert all(f.access.principal == LOGINS[0] for f in drips)


def test_the_persons_drip_is_worked_out_from_the_stored_days_after_a_restart() -> None:
    """Five days of 8 through each login are already in their stored profiles (the
    process restarted): the sixth day alarms as it would have without the restart."""
    people = People(profile=lambda: _quiet(drip=8, drip_days=5))
    found = _drips(_day(people, 0, 8))
    assert found and found[0].period == f"{TODAY} person"
    # The 11th patient of the day together (6 a login would not do): 30 + 11 - 10 > 30.
    assert "11 today" in found[0].explanation


def test_a_quiet_person_with_two_logins_is_no_drip() -> None:
    people = People(profile=_quiet)
    for day in range(10):
        _day(people, day, 4)
    assert _drips(people.found) == []


def test_a_logins_last_active_day_still_in_memory_counts_as_closed() -> None:
    profile, recent = Profile(), Recent()
    profile.days = {"10": {"unexplained": 2}, "11": {"unexplained": 5}}
    recent.day, recent.today_unexplained = 12, {"a", "b", "c"}
    other = Profile()
    other.days = {"11": {"unexplained": 1}}
    assert closed_days([(profile, recent), (other, Recent())], 13) == [2.0, 6.0, 3.0]
    # Today's own count is today's, not a closed day.
    assert closed_days([(profile, recent)], 12) == [2.0, 5.0]
    assert today([(profile, recent), (other, Recent())], 12) == (3, {"a", "b", "c"})


def test_the_persons_cusum_steps_each_day_against_the_days_before() -> None:
    cusum, total = person_cusum([6.0] * 20 + [16.0] * 5, [])
    assert (cusum.target, cusum.slack, cusum.threshold) == (6.0, 4.0, 30.0)
    assert total == 30.0
    # Below the slack, a day takes the total down, never below zero.
    assert person_cusum([6.0] * 20 + [16.0, 0.0], [])[1] == 0.0
    # Few days: the role's pool decides.
    assert person_cusum([9.0], [2, 2, 2])[0].target == 2.0
