"""Where a care relationship may come from (domain/care.py): each rule, and properties
that hold for any record, any registrations and any writer."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from carevault.domain.care import (
    DAY_US,
    LONGEST_VISIT_US,
    VOUCHED,
    CareEvent,
    CareSource,
    CareWindow,
    Opened,
    Window,
    WriterStanding,
    attribute,
    grants,
    made_by,
    named_elsewhere,
)

WINDOW = CareWindow(30 * DAY_US, 90 * DAY_US)
NOW = 1_800_000_000 * 1_000_000
STAFF = WriterStanding(
    system=False, has_relationship=False, practitioner_id="me", clinic_ids=frozenset({"tm"})
)
CARING = WriterStanding(
    system=False, has_relationship=True, practitioner_id="me", clinic_ids=frozenset({"tm"})
)
SYSTEM = WriterStanding(system=True, has_relationship=False)


def visit(
    clinic: str | None = "tm", starts: int | None = NOW, ends: int | None = None
) -> CareEvent:
    return CareEvent(CareSource.VISIT, clinic, ("dr-a",), starts, ends)


def test_a_visit_where_the_patient_is_registered_opens_the_clinic_and_its_practitioners() -> None:
    made = grants(visit(), frozenset({"tm"}), STAFF, NOW, WINDOW, {"dr-a": frozenset({"tm"})})

    assert [(w.clinic_id, w.practitioner_id) for w in made.windows] == [
        ("tm", None),
        (None, "dr-a"),
    ]
    assert {(w.valid_from_us, w.valid_until_us) for w in made.windows} == {
        (NOW - WINDOW.before_us, NOW + WINDOW.after_us)
    }
    assert made.register is None


def test_a_visit_elsewhere_opens_nothing_for_staff() -> None:
    made = grants(visit(), frozenset({"tw"}), CARING, NOW, WINDOW)

    assert made.windows == ()
    assert "not registered" in made.reason


def test_a_visit_the_system_loads_registers_the_patient_there() -> None:
    made = grants(visit(), frozenset({"tw"}), SYSTEM, NOW, WINDOW)

    assert made.register == "tm"
    assert made.windows


def test_the_system_registers_no_one_where_a_visit_is_placed_only_by_its_room() -> None:
    """A room or role is named by an id anyone may have written first (a desk's own room
    under the id a migration's visits use): the system registers a patient only at a
    clinic its visit names itself (adversary round 62). It still opens care where the
    patient is registered already."""
    through_room = CareEvent(CareSource.VISIT, "tm", ("dr-a",), NOW, None, through_directory=True)

    unregistered = grants(through_room, frozenset({"tw"}), SYSTEM, NOW, WINDOW)
    registered = grants(through_room, frozenset({"tm"}), SYSTEM, NOW, WINDOW)

    assert (unregistered.register, unregistered.windows) == (None, ())
    assert "room or role" in unregistered.reason
    assert registered.register is None and registered.windows


def test_a_visit_that_lasts_for_years_counts_as_a_month_at_most() -> None:
    made = grants(visit(ends=NOW + 5 * 365 * DAY_US), frozenset({"tm"}), STAFF, NOW, WINDOW)

    assert max(w.valid_until_us for w in made.windows) == NOW + LONGEST_VISIT_US + WINDOW.after_us


def test_a_care_team_needs_a_writer_who_cares() -> None:
    team = CareEvent(CareSource.CARE_TEAM, None, ("dr-b",), None, None)

    works_at = {"dr-b": frozenset({"tw"})}
    assert grants(team, frozenset({"tm"}), STAFF, NOW, WINDOW, works_at).windows == ()
    (opened,) = grants(team, frozenset({"tm"}), CARING, NOW, WINDOW, works_at).windows
    assert opened.practitioner_id == "dr-b"
    assert opened.valid_until_us == NOW + WINDOW.after_us


def test_a_vouching_by_staff_opens_nothing_to_a_practitioner_no_one_here_is() -> None:
    """Adversary round 60: a care team or referral naming an id no account holds opened
    the record to whichever account an administrator gave that id later."""
    for source in VOUCHED:
        named = CareEvent(source, None, ("dr-later", "dr-b"), NOW, None)
        works_at = {"dr-b": frozenset({"tw"}), "dr-later": frozenset()}
        made = grants(named, frozenset({"tm"}), CARING, NOW, WINDOW, works_at)
        assert [window.practitioner_id for window in made.windows] == ["dr-b"]
        alone = CareEvent(source, None, ("dr-later",), NOW, None)
        assert grants(alone, frozenset({"tm"}), CARING, NOW, WINDOW, works_at).windows == ()
        loaded = grants(alone, frozenset({"tm"}), SYSTEM, NOW, WINDOW)
        assert [window.practitioner_id for window in loaded.windows] == ["dr-later"]


def test_a_referral_by_staff_opens_nothing_to_a_clinic_of_no_one_here() -> None:
    """Adversary round 60: a referral to a clinic id no one works at (an outside
    hospital, a clinic not yet opened) opened the record to whoever worked there later."""
    group = frozenset({"tm", "tw"})
    for clinic, opened in (("kt", []), ("tw", ["tw"])):
        referral = CareEvent(CareSource.REFERRAL, clinic, (), NOW, None)
        made = grants(referral, frozenset({"tm"}), CARING, NOW, WINDOW, {}, group)
        assert [window.clinic_id for window in made.windows] == opened
    loaded = grants(
        CareEvent(CareSource.REFERRAL, "kt", (), NOW, None), frozenset(), SYSTEM, NOW, WINDOW
    )
    assert [window.clinic_id for window in loaded.windows] == ["kt"]


def test_a_referral_to_the_writers_own_clinic_or_self_opens_nothing() -> None:
    own = CareEvent(CareSource.REFERRAL, "tm", ("me",), NOW, None)

    made = grants(own, frozenset({"tm"}), CARING, NOW, WINDOW)

    assert made.windows == ()


def test_a_care_team_that_ended_long_ago_opens_nothing() -> None:
    team = CareEvent(CareSource.CARE_TEAM, None, ("dr-b",), NOW - 400 * DAY_US, NOW - 200 * DAY_US)

    assert grants(team, frozenset({"tm"}), CARING, NOW, WINDOW).windows == ()


TIMES = st.none() | st.integers(min_value=0, max_value=4_000_000_000 * 1_000_000)
CLINICS = st.sampled_from(["tm", "tw", "yl"])
EVENTS = st.builds(
    CareEvent,
    source=st.sampled_from(list(CareSource)),
    clinic_id=st.none() | CLINICS,
    practitioner_ids=st.lists(st.sampled_from(["me", "dr-a", "dr-b"]), max_size=3).map(tuple),
    starts_us=TIMES,
    ends_us=TIMES,
)
STANDINGS = st.builds(
    WriterStanding,
    system=st.just(False),
    has_relationship=st.booleans(),
    practitioner_id=st.just("me"),
    clinic_ids=st.frozensets(CLINICS, max_size=2),
)


@given(EVENTS, st.frozensets(CLINICS), STANDINGS, TIMES.filter(lambda t: t is not None))
def test_staff_writes_never_register_and_never_open_unregistered_clinics(
    event: CareEvent, registered: frozenset[str], writer: WriterStanding, written: int | None
) -> None:
    assert written is not None
    made = grants(event, registered, writer, written, WINDOW)

    assert made.register is None
    for window in made.windows:
        assert window.valid_from_us <= window.valid_until_us
        if event.source not in VOUCHED:
            assert window.clinic_id is None or window.clinic_id in registered
            assert event.clinic_id in registered


@given(
    EVENTS.filter(lambda e: e.source in VOUCHED),
    st.frozensets(CLINICS),
    STANDINGS,
    st.integers(0, 4_000_000_000 * 1_000_000),
)
def test_a_vouching_is_for_someone_else_for_one_care_window_from_when_it_is_written(
    event: CareEvent, registered: frozenset[str], writer: WriterStanding, written: int
) -> None:
    made = grants(event, registered, writer, written, WINDOW)

    if not writer.has_relationship:
        assert made.windows == ()
    for window in made.windows:
        assert window.practitioner_id != writer.practitioner_id
        assert window.clinic_id not in writer.clinic_ids
        assert written - WINDOW.before_us <= window.valid_from_us
        assert window.valid_until_us <= written + WINDOW.after_us


def test_a_visit_may_name_only_practitioners_of_its_clinic_or_from_outside() -> None:
    event = CareEvent(CareSource.VISIT, "tm", ("dr-a", "dr-b", "dr-out"), NOW, None)
    works_at = {"dr-a": frozenset({"tm", "tw"}), "dr-b": frozenset({"tw"})}

    assert named_elsewhere(event, works_at) == ("dr-b",)
    assert named_elsewhere(CareEvent(CareSource.VISIT, None, ("dr-b",), NOW, None), works_at) == ()


def test_a_referral_or_care_team_names_other_clinics_by_design() -> None:
    works_at = {"dr-b": frozenset({"tw"})}
    for source in VOUCHED:
        assert named_elsewhere(CareEvent(source, "tm", ("dr-b",), NOW, None), works_at) == ()


def test_a_visit_by_staff_opens_nothing_to_a_practitioner_who_does_not_work_there() -> None:
    made = grants(visit(), frozenset({"tm"}), STAFF, NOW, WINDOW, {"dr-a": frozenset({"tw"})})
    assert [(w.clinic_id, w.practitioner_id) for w in made.windows] == [("tm", None)]
    outside = grants(visit(), frozenset({"tm"}), STAFF, NOW, WINDOW)
    assert [(w.clinic_id, w.practitioner_id) for w in outside.windows] == [("tm", None)]
    loaded = grants(visit(), frozenset({"tm"}), SYSTEM, NOW, WINDOW)
    assert (None, "dr-a") in [(w.clinic_id, w.practitioner_id) for w in loaded.windows]


def _opened(*makers: str | None) -> frozenset[Opened[str]]:
    """Relationships an earlier version opened around NOW, made by ``makers``."""
    return frozenset(Opened(maker, NOW - DAY_US, NOW + DAY_US) for maker in makers)


def test_care_made_alone_keeps_its_maker_until_someone_else_writes_the_record() -> None:
    # A first version: its writer alone made it; the system's loads state facts.
    assert made_by("staff:ann", None, NOW) == "staff:ann"
    assert made_by(None, None, NOW) is None
    # The same writer again (e.g. setting "arrived" themself): still alone.
    assert made_by("staff:ann", _opened("staff:ann"), NOW) == "staff:ann"
    # Someone else wrote a version (the desk booked or checked the patient in), or the
    # system stated it, or it was already corroborated: no one alone.
    assert made_by("staff:ann", _opened("staff:bob"), NOW) is None
    assert made_by("staff:bob", _opened("staff:ann"), NOW) is None
    assert made_by("staff:ann", _opened(None), NOW) is None
    # The version before opened nothing (e.g. a cancelled booking re-opened): who wrote
    # it is unknown, the writer is alone.
    assert made_by("staff:ann", frozenset(), NOW) == "staff:ann"
    assert made_by(b"token", frozenset({Opened(b"token", NOW, NOW)}), NOW) == b"token"


def test_an_earlier_version_corroborates_only_the_care_it_covers() -> None:
    # The desk booked last year; the version now moved to today is the mover's alone.
    last_year = Opened("staff:desk", NOW - 400 * DAY_US, NOW - 300 * DAY_US)
    assert made_by("staff:ann", {last_year}, NOW) == "staff:ann"
    assert made_by("staff:ann", {last_year}, NOW - 350 * DAY_US) is None
    # Moved within the old care window (rescheduled to next week): corroborated.
    current = Opened("staff:desk", NOW - 30 * DAY_US, NOW + 90 * DAY_US)
    assert made_by("staff:ann", {current}, NOW + 7 * DAY_US) is None
    # Moved far past it: alone, even though the old window covers the day it is moved.
    assert made_by("staff:ann", {current}, NOW + 400 * DAY_US) == "staff:ann"
    # The system's old load lends nothing outside its window either.
    loaded: Opened[str] = Opened(None, NOW - 400 * DAY_US, NOW - 300 * DAY_US)
    assert made_by("staff:ann", {loaded}, NOW) == "staff:ann"
    # Edges of the window count.
    assert made_by("staff:ann", {current}, current.valid_until_us) is None
    assert made_by("staff:ann", {current}, current.valid_until_us + 1) == "staff:ann"


def _whom(window: Window) -> str | None:
    return window.clinic_id or window.practitioner_id


def test_a_corroborated_move_is_corroborated_only_within_the_care_it_continues() -> None:
    desk = Opened("staff:desk", NOW - 30 * DAY_US, NOW + 90 * DAY_US, "tm")
    moved = Window("tm", None, NOW + 60 * DAY_US, NOW + 180 * DAY_US)
    # Moved 90 days on, to the edge of the desk's window: the desk's part is no one's
    # alone, the part beyond it the mover's.
    pieces = attribute([moved], "staff:ann", {desk}, NOW + 90 * DAY_US, _whom)
    assert pieces == (
        (Window("tm", None, NOW + 60 * DAY_US, NOW + 90 * DAY_US), None),
        (Window("tm", None, NOW + 90 * DAY_US + 1, NOW + 180 * DAY_US), "staff:ann"),
    )
    # The next move, into the mover's own part, is the mover's alone: no walking on.
    earlier = {Opened(maker, w.valid_from_us, w.valid_until_us, "tm") for w, maker in pieces}
    onward = Window("tm", None, NOW + 150 * DAY_US, NOW + 270 * DAY_US)
    assert attribute([onward], "staff:ann", earlier, NOW + 180 * DAY_US, _whom) == (
        (onward, "staff:ann"),
    )
    # Within the desk's window whole (a reschedule to tomorrow): split at its end only.
    booked = Opened("staff:desk", NOW - 30 * DAY_US, NOW + 90 * DAY_US, "dr-a")
    tomorrow = Window(None, "dr-a", NOW - 29 * DAY_US, NOW + 91 * DAY_US)
    assert attribute([tomorrow], "staff:ann", {desk, booked}, NOW + DAY_US, _whom) == (
        (Window(None, "dr-a", NOW - 29 * DAY_US, NOW + 90 * DAY_US), None),
        (Window(None, "dr-a", NOW + 90 * DAY_US + 1, NOW + 91 * DAY_US), "staff:ann"),
    )
    # Earlier than the care it continues, too: the part before it is the mover's.
    wide = Window("tm", None, NOW - 60 * DAY_US, NOW + 120 * DAY_US)
    assert [maker for _, maker in attribute([wide], "staff:ann", {desk}, NOW, _whom)] == [
        "staff:ann",
        None,
        "staff:ann",
    ]
    # Not corroborated, or the system's: whole.
    assert attribute([moved], "staff:ann", None, NOW, _whom) == ((moved, "staff:ann"),)
    assert attribute([moved], None, {desk}, NOW, _whom) == ((moved, None),)


def test_a_colleague_who_writes_a_moved_booking_again_corroborates_all_of_it() -> None:
    """The desk books, the doctor moves it (the part beyond the desk's window is the
    doctor's alone), the desk checks the patient in: the whole window is now no one's
    alone. Taken piece by piece, the doctor's part became the desk's alone, and handed
    back and forth with each write, never corroborated (the reviewer's case)."""
    booked = Opened("staff:desk", 0, 100, "tm")
    moved = Window("tm", None, 30, 130)
    pieces = attribute([moved], "staff:doc", {booked}, 80, _whom)
    assert pieces == (
        (Window("tm", None, 30, 100), None),
        (Window("tm", None, 101, 130), "staff:doc"),
    )
    stored = {Opened(maker, w.valid_from_us, w.valid_until_us, "tm") for w, maker in pieces}
    assert attribute([moved], "staff:desk", stored, 80, _whom) == ((moved, None),)
    # Written again by the doctor: still no one's alone (the desk's part holds the day).
    whole = {Opened(None, 30, 130, "tm")}
    assert attribute([moved], "staff:doc", whole, 80, _whom) == ((moved, None),)
    # A run is unbroken: a piece of the doctor's own between two others' is no bridge.
    gapped = {
        Opened("staff:desk", 0, 100, "tm"),
        Opened("staff:doc", 101, 200, "tm"),
        Opened("staff:desk", 201, 300, "tm"),
    }
    far = Window("tm", None, 30, 300)
    assert attribute([far], "staff:doc", gapped, 80, _whom) == (
        (Window("tm", None, 30, 100), None),
        (Window("tm", None, 101, 300), "staff:doc"),
    )


def test_a_name_one_puts_on_a_colleagues_booking_is_ones_own() -> None:
    # The desk's booking opened the clinic and dr-old; the doctor names themself on it.
    desk = {
        Opened("staff:desk", NOW - 30 * DAY_US, NOW + 90 * DAY_US, whom)
        for whom in ("tm", "dr-old")
    }
    clinic = Window("tm", None, NOW - 30 * DAY_US, NOW + 90 * DAY_US)
    named = Window(None, "dr-in", NOW - 30 * DAY_US, NOW + 90 * DAY_US)
    assert attribute([clinic, named], "staff:ann", desk, NOW, _whom) == (
        (clinic, None),
        (named, "staff:ann"),
    )
