"""Breadth across the logins of one practitioner (``signals.Person``): a second login is
no second allowance of patients no care explains, as it is no second release budget."""

from __future__ import annotations

from collections.abc import Callable

from carevault.detect.glass import GRANTED
from carevault.detect.model import Finding, Severity
from carevault.detect.profile import Profile, RoleBaseline
from carevault.detect.signals import AccountState, Context, Detectors, Person
from tests.unit.detect.test_signals import MORNING, read_entry

LOGINS = ("staff:wong-a", "staff:wong-b")


class People:
    """Entries of several logins through the detectors, each login's state linked to
    one person's windows (as the engine links them)."""

    def __init__(
        self,
        logins: tuple[str, ...] = LOGINS,
        *,
        linked: bool = True,
        profile: Callable[[], Profile] = lambda: Profile(role="physician"),
    ) -> None:
        """``profile``: each login's stored profile, made afresh for each."""
        self.detectors = Detectors()
        self.states = {login: AccountState(profile()) for login in logins}
        if linked:
            Person(logins).link(logins, self.states)
        self.role = RoleBaseline()
        self.position = 0
        self.found: list[Finding] = []

    def read(self, login: str, patient: str, at_us: int, **fields: object) -> list[Finding]:
        changed = {"principal": login, "patient_pseudonym": patient, **fields}
        access = read_entry(self.position, at_us, **changed)
        self.position += 1
        found = self.detectors.observe(access, self.states[login], self.role, Context())
        self.found.extend(found)
        return found

    def breadth(self) -> list[Finding]:
        return [f for f in self.found if f.detector == "breadth"]


def _fifteen_each(people: People, logins: tuple[str, ...] = LOGINS) -> None:
    """Fifteen distinct patients a login, within ten minutes: each under the
    physician's floor (20), together past it."""
    at = MORNING
    for index, login in enumerate(logins):
        for n in range(15):
            people.read(login, f"p{index}-{n}", at)
            at += 10_000_000


def test_two_logins_of_one_practitioner_past_the_limit_together_is_breadth() -> None:
    people = People()
    _fifteen_each(people)
    breadth = people.breadth()
    assert breadth, people.found
    first = breadth[0]
    assert first.access.principal == "staff:wong-b"
    assert first.period.endswith(" person") and first.period.startswith("10 minutes")
    assert first.severity is Severity.MEDIUM
    assert "21 distinct patients" in first.explanation
    assert "wong-a, wong-b" in first.explanation and "6 of them with this one" in first.explanation
    # The patients named are the person's, whichever login opened them; the first entry
    # that shows them is the first login's.
    assert {"p0-0", "p1-5"} <= set(first.patients)
    assert first.first_position == 0
    last = breadth[-1]
    assert "30 distinct patients" in last.explanation


def test_other_people_keep_their_own_windows() -> None:
    people = People(linked=False)
    _fifteen_each(people)
    assert people.breadth() == []


def test_one_login_past_its_own_limit_raises_its_own_finding_not_the_persons() -> None:
    people = People()
    at = MORNING
    for n in range(25):
        people.read("staff:wong-a", f"p{n}", at)
        at += 10_000_000
    periods = {f.period for f in people.breadth()}
    assert periods and not any(p.endswith(" person") for p in periods)


def test_patients_care_explains_count_for_no_login() -> None:
    people = People()
    at = MORNING
    for index, login in enumerate(LOGINS):
        for n in range(15):
            people.read(login, f"p{index}-{n}", at, explained=True)
            at += 10_000_000
    assert people.found == []


def test_the_same_patient_through_both_logins_is_one_patient() -> None:
    people = People()
    at = MORNING
    for n in range(15):
        for login in LOGINS:
            people.read(login, f"p{n}", at)
            at += 5_000_000
    assert people.breadth() == []


def test_twice_the_limit_together_is_high() -> None:
    people = People(("staff:a", "staff:b", "staff:c"))
    _fifteen_each(people, ("staff:a", "staff:b", "staff:c"))
    assert max(f.severity.rank for f in people.breadth()) == Severity.HIGH.rank


def test_changes_split_across_two_logins_are_counted_together() -> None:
    """25 patients' stored records rewritten with each login in ten minutes: 50, past
    the limit of 40 that neither login alone reaches."""
    people = People()
    at = MORNING
    for index, login in enumerate(LOGINS):
        for n in range(25):
            people.read(login, f"p{index}-{n}", at, tag="fhir:resource:update")
            at += 5_000_000
    changes = [f for f in people.found if f.detector == "staff-changes"]
    assert changes, people.found
    assert changes[0].access.principal == "staff:wong-b"
    assert changes[0].period.endswith(" person")
    assert "41 distinct patients with the logins of one practitioner (wong-a, wong-b)" in (
        changes[0].explanation
    )
    assert changes[-1].severity is Severity.MEDIUM
    assert len(changes[-1].patients) <= 50 and changes[0].first_position == 0


def test_glass_broken_for_patients_split_across_two_logins_is_one_sweep() -> None:
    """Three grants an hour with each login: six patients, past the five an hour that
    neither login alone passes."""
    people = People()
    at = MORNING
    for index, login in enumerate(LOGINS):
        for n in range(3):
            people.read(login, f"p{index}-{n}", at, tag=GRANTED, reason="grant g until 1")
            at += 60_000_000
    (sweep,) = [f for f in people.found if f.detector == "break-glass-volume"]
    assert sweep.access.principal == "staff:wong-b" and sweep.period.endswith(" person")
    assert "6 distinct patients with the logins of one practitioner" in sweep.explanation
    assert len(sweep.patients) == 6


def test_other_people_keep_their_own_changes_and_grants() -> None:
    people = People(linked=False)
    at = MORNING
    for index, login in enumerate(LOGINS):
        for n in range(25):
            people.read(login, f"p{index}-{n}", at, tag="fhir:resource:update")
            at += 5_000_000
        for n in range(3):
            people.read(login, f"g{index}-{n}", at, tag=GRANTED, reason="grant g until 1")
            at += 60_000_000
    assert {f.detector for f in people.found} & {"staff-changes", "break-glass-volume"} == set()
