"""The access policy, cell by cell.

EXPECTED is the policy written out by hand: for each role and data category, four
cells — the patient at one of the actor's clinics with a care relationship, at one of
their clinics without one, at another clinic with one, at another clinic without
one — each saying whether the actor may Read and/or Write ("RW", "R", "W", "-").
The test asks ``decide`` every cell, for reading and for writing.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carevault.domain.categories import DataCategory
from carevault.domain.policy import (
    Actor,
    Target,
    claims_directory,
    decide,
    may_delete,
    may_move,
    may_place,
    outside_own_clinics,
    placed_elsewhere,
    writes_elsewhere,
)
from carevault.domain.roles import GROUP_WIDE, Right, Role

CELLS = ("same clinic, care", "same clinic, no care", "other clinic, care", "other clinic, no care")

# fmt: off
EXPECTED: dict[Role, dict[str, tuple[str, str, str, str]]] = {
    #                    same+care same   other+care other
    Role.PHYSICIAN: {
        "identity":           ("RW", "RW", "RW", "-"),
        "contact":            ("RW", "RW", "RW", "-"),
        "demographic":        ("RW", "RW", "RW", "-"),
        "visit":              ("RW", "RW", "RW", "-"),
        "government_id":      ("R",  "R",  "R",  "-"),
        "financial":          ("-",  "-",  "-",  "-"),
        "clinical":           ("RW", "-",  "RW", "-"),
        "medication":         ("RW", "-",  "RW", "-"),
        "sensitive_clinical": ("RW", "-",  "RW", "-"),
        "credentials":        ("-",  "-",  "-",  "-"),
    },
    Role.NURSE: {
        "identity":           ("RW", "RW", "RW", "-"),
        "contact":            ("RW", "RW", "RW", "-"),
        "demographic":        ("RW", "RW", "RW", "-"),
        "visit":              ("RW", "RW", "RW", "-"),
        "government_id":      ("R",  "R",  "R",  "-"),
        "financial":          ("-",  "-",  "-",  "-"),
        "clinical":           ("RW", "-",  "RW", "-"),
        "medication":         ("R",  "-",  "R",  "-"),
        "sensitive_clinical": ("R",  "-",  "R",  "-"),
        "credentials":        ("-",  "-",  "-",  "-"),
    },
    Role.PHARMACIST: {
        "identity":           ("R",  "R",  "R",  "-"),
        "contact":            ("R",  "R",  "R",  "-"),
        "demographic":        ("R",  "R",  "R",  "-"),
        "visit":              ("R",  "R",  "R",  "-"),
        "government_id":      ("-",  "-",  "-",  "-"),
        "financial":          ("-",  "-",  "-",  "-"),
        "clinical":           ("R",  "-",  "R",  "-"),
        "medication":         ("RW", "-",  "RW", "-"),
        "sensitive_clinical": ("-",  "-",  "-",  "-"),
        "credentials":        ("-",  "-",  "-",  "-"),
    },
    Role.FRONT_DESK: {
        "identity":           ("RW", "RW", "-",  "-"),
        "contact":            ("RW", "RW", "-",  "-"),
        "demographic":        ("RW", "RW", "-",  "-"),
        "visit":              ("RW", "RW", "-",  "-"),
        "government_id":      ("W",  "W",  "-",  "-"),
        "financial":          ("-",  "-",  "-",  "-"),
        "clinical":           ("-",  "-",  "-",  "-"),
        "medication":         ("-",  "-",  "-",  "-"),
        "sensitive_clinical": ("-",  "-",  "-",  "-"),
        "credentials":        ("-",  "-",  "-",  "-"),
    },
    Role.BILLING: {  # group-wide
        "identity":           ("R",  "R",  "R",  "R"),
        "contact":            ("-",  "-",  "-",  "-"),
        "demographic":        ("-",  "-",  "-",  "-"),
        "visit":              ("-",  "-",  "-",  "-"),
        "government_id":      ("-",  "-",  "-",  "-"),
        "financial":          ("RW", "RW", "RW", "RW"),
        "clinical":           ("-",  "-",  "-",  "-"),
        "medication":         ("-",  "-",  "-",  "-"),
        "sensitive_clinical": ("-",  "-",  "-",  "-"),
        "credentials":        ("-",  "-",  "-",  "-"),
    },
    Role.CLINIC_MANAGER: {
        "identity":           ("R",  "R",  "-",  "-"),
        "contact":            ("R",  "R",  "-",  "-"),
        "demographic":        ("R",  "R",  "-",  "-"),
        "visit":              ("RW", "RW", "-",  "-"),
        "government_id":      ("-",  "-",  "-",  "-"),
        "financial":          ("-",  "-",  "-",  "-"),
        "clinical":           ("-",  "-",  "-",  "-"),
        "medication":         ("-",  "-",  "-",  "-"),
        "sensitive_clinical": ("-",  "-",  "-",  "-"),
        "credentials":        ("-",  "-",  "-",  "-"),
    },
    Role.PRIVACY_OFFICER: {  # group-wide; no clinical by default
        "identity":           ("R",  "R",  "R",  "R"),
        "contact":            ("R",  "R",  "R",  "R"),
        "demographic":        ("-",  "-",  "-",  "-"),
        "visit":              ("-",  "-",  "-",  "-"),
        "government_id":      ("-",  "-",  "-",  "-"),
        "financial":          ("-",  "-",  "-",  "-"),
        "clinical":           ("-",  "-",  "-",  "-"),
        "medication":         ("-",  "-",  "-",  "-"),
        "sensitive_clinical": ("-",  "-",  "-",  "-"),
        "credentials":        ("-",  "-",  "-",  "-"),
    },
    Role.INTEGRATION: {  # a service: its clinics, no care relationship involved
        "identity":           ("RW", "RW", "-",  "-"),
        "contact":            ("RW", "RW", "-",  "-"),
        "demographic":        ("RW", "RW", "-",  "-"),
        "visit":              ("RW", "RW", "-",  "-"),
        "government_id":      ("RW", "RW", "-",  "-"),
        "financial":          ("RW", "RW", "-",  "-"),
        "clinical":           ("RW", "RW", "-",  "-"),
        "medication":         ("RW", "RW", "-",  "-"),
        "sensitive_clinical": ("-",  "-",  "-",  "-"),
        "credentials":        ("-",  "-",  "-",  "-"),
    },
}
# fmt: on

MY_CLINIC, OTHER_CLINIC = "clinic-mong-kok", "clinic-sha-tin"


def target(cell: int, *, break_glass: bool = False) -> Target:
    clinic = MY_CLINIC if cell < 2 else OTHER_CLINIC
    return Target(
        patient_pseudonym="p-1",
        clinic_ids=frozenset({clinic}),
        care_relationship=cell in (0, 2),
        break_glass=break_glass,
    )


def actor(role: Role) -> Actor:
    return Actor(principal=f"staff:{role}", role=role, clinic_ids=frozenset({MY_CLINIC}))


def test_the_table_covers_every_role_and_category() -> None:
    assert set(EXPECTED) == set(Role)
    for role, row in EXPECTED.items():
        assert set(row) == {str(c) for c in DataCategory}, role


CASES = [
    (role, category, cell)
    for role in Role
    for category in DataCategory
    for cell in range(len(CELLS))
]


@pytest.mark.parametrize(("role", "category", "cell"), CASES)
def test_policy_cell(role: Role, category: DataCategory, cell: int) -> None:
    expected = EXPECTED[role][str(category)][cell]
    for right, letter in ((Right.READ, "R"), (Right.WRITE, "W")):
        decision = decide(actor(role), right, [category], target(cell))
        assert decision.allowed == (letter in expected), (role, category, CELLS[cell], right)
        assert decision.reason
        if decision.allowed:
            assert decision.granted == {category}
        else:
            assert decision.granted == frozenset()


@pytest.mark.parametrize("role", [Role.PHYSICIAN, Role.NURSE, Role.PHARMACIST])
def test_break_glass_opens_health_data_for_clinicians_and_says_so(role: Role) -> None:
    decision = decide(actor(role), Right.READ, [DataCategory.CLINICAL], target(3, break_glass=True))
    assert decision.allowed and decision.break_glass_used
    assert decision.reason == "break the glass"


@pytest.mark.parametrize(
    "category", [DataCategory.IDENTITY, DataCategory.CONTACT, DataCategory.DEMOGRAPHIC]
)
def test_break_glass_opens_who_the_patient_is_to_read_never_to_rewrite(
    category: DataCategory,
) -> None:
    doctor = actor(Role.PHYSICIAN)
    assert decide(doctor, Right.READ, [category], target(3, break_glass=True)).allowed
    written = decide(doctor, Right.WRITE, [category], target(3, break_glass=True))
    assert not written.allowed
    assert "breaking the glass" in written.reason
    # Health data under the glass is still written (an emergency's notes).
    assert decide(doctor, Right.WRITE, [DataCategory.CLINICAL], target(3, break_glass=True)).allowed


@pytest.mark.parametrize(
    "role", [Role.FRONT_DESK, Role.BILLING, Role.CLINIC_MANAGER, Role.PRIVACY_OFFICER]
)
def test_break_glass_gives_nothing_to_non_clinicians(role: Role) -> None:
    decision = decide(actor(role), Right.READ, [DataCategory.CLINICAL], target(3, break_glass=True))
    assert not decision.allowed


def test_reads_are_subsetted_writes_are_all_or_nothing() -> None:
    asked = [DataCategory.IDENTITY, DataCategory.GOVERNMENT_ID, DataCategory.CONTACT]
    front_desk = actor(Role.FRONT_DESK)
    read = decide(front_desk, Right.READ, asked, target(1))
    assert read.allowed
    assert read.withheld == {DataCategory.GOVERNMENT_ID}
    assert "withheld: government_id" in read.reason
    pharmacist = actor(Role.PHARMACIST)
    write = decide(
        pharmacist, Right.WRITE, [DataCategory.MEDICATION, DataCategory.CLINICAL], target(0)
    )
    assert not write.allowed and write.granted == frozenset()


def test_scopes_narrow_a_role_never_widen_it() -> None:
    lab = Actor(
        "client:lab",
        Role.INTEGRATION,
        frozenset({MY_CLINIC}),
        scope_categories=frozenset({DataCategory.CLINICAL, DataCategory.SENSITIVE_CLINICAL}),
    )
    assert decide(lab, Right.WRITE, [DataCategory.CLINICAL], target(1)).allowed
    assert not decide(lab, Right.READ, [DataCategory.IDENTITY], target(1)).allowed
    assert not decide(lab, Right.READ, [DataCategory.SENSITIVE_CLINICAL], target(1)).allowed


def test_directory_resources_need_only_the_role_right() -> None:
    clinic_record = Target(patient_pseudonym=None, clinic_ids=frozenset({OTHER_CLINIC}))
    assert decide(
        actor(Role.FRONT_DESK), Right.READ, [DataCategory.IDENTITY], clinic_record
    ).allowed


def test_a_clinics_directory_records_are_written_only_by_its_own_staff() -> None:
    desk = actor(Role.FRONT_DESK)
    theirs = Target(patient_pseudonym=None, clinic_ids=frozenset({OTHER_CLINIC}))
    mine = Target(patient_pseudonym=None, clinic_ids=frozenset({MY_CLINIC}))
    no_ones = Target(patient_pseudonym=None, clinic_ids=frozenset())
    refused = decide(desk, Right.WRITE, [DataCategory.VISIT], theirs)
    assert not refused.allowed and "not yours" in refused.reason
    assert decide(desk, Right.WRITE, [DataCategory.VISIT], mine).allowed
    assert decide(desk, Right.WRITE, [DataCategory.IDENTITY], no_ones).allowed
    assert not decide(actor(Role.PHARMACIST), Right.WRITE, [DataCategory.VISIT], mine).allowed


def test_a_patients_record_with_no_patient_is_no_directory_record() -> None:
    mine = Target(patient_pseudonym=None, clinic_ids=frozenset({MY_CLINIC}), orphan=True)
    theirs = Target(patient_pseudonym=None, clinic_ids=frozenset({OTHER_CLINIC}), orphan=True)
    for role in (Role.PHYSICIAN, Role.NURSE):
        refused = decide(actor(role), Right.READ, [DataCategory.CLINICAL], mine)
        assert not refused.allowed and "care relationship" in refused.reason
    desk = actor(Role.FRONT_DESK)
    assert decide(desk, Right.READ, [DataCategory.VISIT], mine).allowed
    assert not decide(desk, Right.READ, [DataCategory.VISIT], theirs).allowed


@given(
    st.sampled_from(list(Role)),
    st.sets(st.sampled_from(list(DataCategory)), min_size=1),
    st.integers(0, 3),
    st.booleans(),
    st.sampled_from([Right.READ, Right.WRITE]),
)
def test_granted_and_withheld_split_what_was_asked(
    role: Role, asked: set[DataCategory], cell: int, glass: bool, right: Right
) -> None:
    decision = decide(actor(role), right, asked, target(cell, break_glass=glass))
    assert decision.granted | decision.withheld == asked
    assert not decision.granted & decision.withheld
    assert decision.allowed == bool(decision.granted)
    for category in decision.granted:
        single = decide(actor(role), right, [category], target(cell, break_glass=glass))
        assert single.allowed


@pytest.mark.parametrize("role", list(Role))
def test_a_patients_record_is_placed_only_at_the_writers_clinics(role: Role) -> None:
    actor = Actor("staff:someone", role, frozenset({"clinic-a"}))

    assert may_place(actor, "clinic-a")
    assert may_place(actor, None)
    assert may_place(actor, "clinic-b") is (role in GROUP_WIDE)


def test_a_directory_record_places_only_practitioners_who_work_at_its_clinic() -> None:
    desk = Actor("staff:desk", Role.FRONT_DESK, frozenset({"clinic-a"}))
    works_at = {
        "dr-here": frozenset({"clinic-a", "clinic-b"}),
        "dr-there": frozenset({"clinic-b"}),
        "dr-outside": frozenset(),
    }
    assert placed_elsewhere(desk, "clinic-a", works_at) == ("dr-there",)
    assert placed_elsewhere(desk, "clinic-b", works_at) == ()
    feed = Actor("client:directory", Role.INTEGRATION, frozenset({"clinic-a"}))
    assert placed_elsewhere(feed, "clinic-a", works_at) == ()


def test_staff_never_claim_a_directory_record_for_a_clinic_it_was_not_at() -> None:
    """Adversary round 60: a ward no clinic holds (an outside hospital's, or one written
    without an organization) claimed by a desk for its clinic placed there every visit
    the system later loaded at it, registering other clinics' patients there."""
    desk = Actor("staff:desk", Role.FRONT_DESK, frozenset({"clinic-a", "clinic-b"}))
    group = frozenset({"clinic-a", "clinic-b"})
    assert claims_directory(desk, frozenset(), "clinic-a", group)  # no clinic's, or outside
    assert claims_directory(desk, frozenset({"clinic-b"}), "clinic-a", group)  # moved
    assert not claims_directory(desk, frozenset({"clinic-a"}), "clinic-a", group)  # its own
    assert not claims_directory(desk, frozenset(), "hosp-qeh", group)  # stays outside
    assert claims_directory(desk, frozenset(), "clinic-a", frozenset())  # a stale list
    assert not claims_directory(desk, frozenset({"clinic-a"}), None, group)
    feed = Actor("client:directory", Role.INTEGRATION, frozenset({"clinic-a"}))
    assert not claims_directory(feed, frozenset(), "clinic-a", group)


def test_staff_change_a_patients_record_placed_elsewhere_only_where_the_patient_is_registered() -> (
    None
):
    """Adversary round 60: a booking a desk planted at its clinic for another clinic's
    patient, edited by the patient's clinic, showed the planter that clinic's note."""
    desk = Actor("staff:desk", Role.FRONT_DESK, frozenset({"clinic-a"}))
    home = frozenset({"clinic-a"})
    assert writes_elsewhere(desk, "clinic-b", home)  # planted at b, the patient is a's
    assert not writes_elsewhere(desk, "clinic-b", home | {"clinic-b"})  # b has them too
    assert not writes_elsewhere(desk, "clinic-a", frozenset())  # the desk's own clinic's
    assert not writes_elsewhere(desk, None, home)  # placed at no clinic: read by a's only
    for role in GROUP_WIDE:
        assert not writes_elsewhere(Actor("staff:x", role, frozenset()), "clinic-b", home)
    feed = Actor("client:lab", Role.INTEGRATION, frozenset({"clinic-a"}))
    assert writes_elsewhere(feed, "clinic-b", home)


def test_only_a_record_outside_the_writers_clinics_needs_its_patients_registrations() -> None:
    """The gate reads a patient's registrations for an update only where
    ``outside_own_clinics`` says they may decide it: for every other placing,
    ``writes_elsewhere`` answers the same whatever the registrations are."""
    desk = Actor("staff:desk", Role.FRONT_DESK, frozenset({"clinic-a"}))
    group = [Actor("staff:x", role, frozenset()) for role in GROUP_WIDE]
    every = [frozenset(), frozenset({"clinic-a"}), frozenset({"clinic-b"})]
    for actor in (desk, *group):
        for placed_at in ("clinic-a", "clinic-b", None):
            answers = {writes_elsewhere(actor, placed_at, registered) for registered in every}
            if not outside_own_clinics(actor, placed_at):
                assert answers == {False}, (actor.role, placed_at)
    assert outside_own_clinics(desk, "clinic-b")
    assert not outside_own_clinics(desk, "clinic-a")


def test_a_patients_record_moves_only_to_a_clinic_it_belonged_to_or_from_one_of_the_writers() -> (
    None
):
    """Adversary round 64: a clinician whose right to change a record is theirs alone (a
    referral, a grant) moved it to their clinic, opening it to every colleague there."""
    doctor = Actor("staff:doc", Role.PHYSICIAN, frozenset({"clinic-a"}), "dr-a")
    assert not may_move(doctor, frozenset({"clinic-b"}), "clinic-a")  # from afar
    assert may_move(doctor, frozenset({"clinic-b", "clinic-a"}), "clinic-a")  # open there
    assert may_move(doctor, frozenset({"clinic-b"}), None)  # to no clinic: opens nothing
    assert may_move(doctor, frozenset({"clinic-b"}), "clinic-b")
    both = Actor("staff:desk", Role.FRONT_DESK, frozenset({"clinic-a", "clinic-b"}))
    assert may_move(both, frozenset({"clinic-a"}), "clinic-b")  # from a clinic of theirs
    for role in GROUP_WIDE:
        assert may_move(Actor("staff:x", role, frozenset()), frozenset({"clinic-b"}), "clinic-a")


def test_staff_delete_a_patients_record_only_as_staff_of_a_clinic_it_belongs_to() -> None:
    """Adversary round 64: a referred doctor deleted the patient's visit at their own
    clinic, and the care it opened there with it."""
    doctor = Actor("staff:doc", Role.PHYSICIAN, frozenset({"clinic-a"}), "dr-a")
    assert not may_delete(doctor, frozenset({"clinic-b"}))  # care of his own only
    assert may_delete(doctor, frozenset({"clinic-b", "clinic-a"}))  # registered at a too
    assert not may_delete(doctor, frozenset())
    for role in GROUP_WIDE:
        assert may_delete(Actor("staff:x", role, frozenset()), frozenset({"clinic-b"}))
