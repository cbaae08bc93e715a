"""Where a care relationship may come from: the rules, pure, for a reader to check.

A care relationship opens a patient's health data to a clinic's clinicians or to one
practitioner for a while. Writing a record never grants its writer anything by itself.
A relationship comes only from:

1. **Care at a clinic where the patient is registered.** A visit (Encounter) or an
   appointment at clinic C opens the record to C's clinicians and to the practitioners
   on it, for the care window around its dates, if the patient is registered at C: C is
   their home clinic, or they proved their presence there (``Patient/$register``: the
   identifier they showed, with their birth date, matched against the blind index), or
   the system registered them on import. A visit at a clinic where the patient is not
   registered opens nothing. A member of staff may name on it only practitioners who
   work at C (``named_elsewhere``): naming another clinic's doctor would send the
   patient's record there with no clinician vouching for it (that is rule 2's job).
2. **A colleague who vouches.** A care team or a referral names practitioners or a clinic;
   it opens the record to them only if its writer has a care relationship with the
   patient of their own (from rule 1 or an earlier vouching, never from breaking the
   glass and never from the record being written), and only for one care window from
   when it is written, whatever dates it gives. It never opens the record to its writer
   or the writer's own clinics: a vouching is for someone else; and, by a member of
   staff, only to practitioners who work at a clinic of the group and to the group's
   clinics.
3. **Breaking the glass**, stated, time-limited and reviewed (``access/breakglass.py``).

Data loaded by the system itself (seeding, imports) states facts rather than asking
for access: a visit it writes at a clinic also registers the patient there, when the
visit names that clinic itself (its ``serviceProvider``), not only through a room or
role placed there, whose id a member of staff may have written first.

**Self-made care explains nothing to the detectors.** Rule 1 lets a clinician book an
appointment or open a visit naming themself and then read the chart: care goes on (a
doctor booking a follow-up must not be locked out). But an insider could book a
celebrity and read them with nothing to show. So each relationship keeps who alone made
it (``granted_by``, ``made_by``): the one principal whose writes are every version of its
record. Such a relationship does not explain *that* principal's accesses to the
detectors (``carevault.detect.explain``) until someone else corroborates it: another
member of staff, a client app or the system writes a version of the record (the desk
checks the patient in, a colleague reschedules), or another record of care covers the
access. A status the writer sets themself ("arrived", "finished") corroborates nothing.
Nor does an earlier version by someone else whose care the new version does not
continue: it corroborates only if the relationship it opened covers the new version's
date (``made_by``), and only for the clinic or practitioner it was open to and within
its own window (``attribute``): a corroborated move lends nothing to the next move
beyond the care it continued, and a name one puts on a colleague's booking is one's own. A
booking of long ago moved to today, or a cancelled one re-opened (it opened nothing),
is care made by its writer alone until someone else writes it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Generic, TypeVar

from carevault.domain.policy import working_elsewhere

DAY_US = 86_400 * 1_000_000

#: Whoever wrote a record of care, as the caller names them (a principal or its token).
Maker = TypeVar("Maker", str, bytes)

#: The longest a single visit or appointment counts as lasting: a clinic visit takes
#: hours, and a made-up visit that "lasts" for years must not open a record for years.
LONGEST_VISIT_US = 31 * DAY_US


class CareSource(StrEnum):
    """What a relationship-bearing record is, in care terms."""

    VISIT = "visit"
    APPOINTMENT = "appointment"
    CARE_TEAM = "care-team"
    REFERRAL = "referral"


VOUCHED = frozenset({CareSource.CARE_TEAM, CareSource.REFERRAL})


@dataclass(frozen=True)
class CareEvent:
    """What a written record says about care, read from the record."""

    source: CareSource
    #: The clinic where the care happens or to which the patient is referred.
    clinic_id: str | None
    practitioner_ids: tuple[str, ...]
    #: When the care starts and ends (µs); None where the record gives no date.
    starts_us: int | None
    ends_us: int | None
    #: The record names its clinic only through a room or role placed there (a
    #: Location, a PractitionerRole), not as an organization of its own (a visit's
    #: ``serviceProvider``): where it is placed is what that room's writer said.
    through_directory: bool = False


@dataclass(frozen=True)
class WriterStanding:
    """The writer's own standing with the patient when the record is written."""

    #: The system itself (seeding, import), not a staff member.
    system: bool
    #: The writer has a care relationship of their own with the patient now, not one
    #: that breaking the glass gave them.
    has_relationship: bool
    practitioner_id: str | None = None
    clinic_ids: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Window:
    clinic_id: str | None
    practitioner_id: str | None
    valid_from_us: int
    valid_until_us: int


@dataclass(frozen=True)
class Grants:
    """The relationships a record opens, and why; ``register`` names a clinic the system
    registers the patient at (rule 1, data loaded by the system)."""

    windows: tuple[Window, ...]
    reason: str
    register: str | None = None


@dataclass(frozen=True)
class CareWindow:
    """How long care opens a record: this many µs before and after."""

    before_us: int
    after_us: int

    @classmethod
    def of_days(cls, before: int, after: int) -> CareWindow:
        """The window of the settings ``care_days_before`` and ``care_days_after``."""
        return cls(before * DAY_US, after * DAY_US)


def grants(
    event: CareEvent,
    registered: frozenset[str],
    writer: WriterStanding,
    written_us: int,
    window: CareWindow,
    works_at: Mapping[str, frozenset[str]] | None = None,
    group: frozenset[str] = frozenset(),
) -> Grants:
    """The relationships ``event`` opens for a patient registered at ``registered``.

    ``works_at``: the clinics of the practitioners it names. A visit or appointment by
    a member of staff opens the record only to those of them who work at its clinic:
    one naming a practitioner no one here works as (an outside specialist, a made-up
    id) would otherwise open it to whichever account is given that id later. A care
    team or referral by a member of staff likewise opens it only to practitioners who
    work at a clinic of the group (any clinic: a referral crosses clinics by design),
    and to a clinic only if it is one of the ``group``'s."""
    if event.source in VOUCHED:
        return _vouched(event, registered, writer, written_us, window, works_at, group)
    if event.clinic_id is None:
        return Grants((), "no relationship: the record names no clinic")
    if event.starts_us is None:
        return Grants((), "no relationship: the record gives no date")
    register = None
    if event.clinic_id not in registered:
        if not writer.system:
            return Grants(
                (), "no relationship: the patient is not registered at the record's clinic"
            )
        if event.through_directory:
            # A room or role is named by an id anyone may have written first: a desk that
            # made "ward-7" at its clinic before a load naming it had every patient of
            # the load's visits there registered at its clinic (adversary round 62).
            return Grants(
                (),
                "no relationship: the patient is not registered at the record's clinic, "
                "which the record names only through a room or role",
            )
        register = event.clinic_id
    ends = min(
        max(event.ends_us or event.starts_us, event.starts_us), event.starts_us + LONGEST_VISIT_US
    )
    named = event.practitioner_ids
    if not writer.system:
        known = works_at or {}
        named = tuple(p for p in named if event.clinic_id in known.get(p, frozenset()))
    made = _windows(
        event.clinic_id,
        named,
        event.starts_us - window.before_us,
        ends + window.after_us,
    )
    return Grants(made, f"{event.source} at a clinic where the patient is registered", register)


@dataclass(frozen=True)
class Opened(Generic[Maker]):
    """One relationship an earlier version of a record opened: who alone made it (None:
    no one alone), the window it covered (µs), and to whom it was open (``whom``: the
    caller's key for a clinic or a practitioner; None where not told)."""

    maker: Maker | None
    valid_from_us: int
    valid_until_us: int
    whom: Hashable = None

    def covers(self, moment_us: int) -> bool:
        return self.valid_from_us <= moment_us <= self.valid_until_us


def made_by(
    writer: Maker | None, earlier: Collection[Opened[Maker]] | None, moment_us: int
) -> Maker | None:
    """Who alone made the relationships a version of a care record opens: ``writer``
    (the principal writing it, or a token of it; None for the system) when no one else
    corroborates them, else None (someone else wrote the care they continue, or the
    system stated it). ``earlier``: what the version before opened (None for a first
    version; empty when it opened nothing, e.g. a cancelled booking being re-opened,
    and then who wrote it is unknown here: the writer is taken to be alone, which fails
    towards an alert, not away from one). ``moment_us``: when the new version's care
    is (its start; when it is written where it gives no date).

    Only an earlier relationship that covers ``moment_us`` corroborates: the new version
    continues the care someone else arranged, within that care's own window (the desk
    booked today, the doctor moves it to next week). One that moves a record outside
    its old window (a booking of last year moved to today) opens care of the writer's
    own making: otherwise any old record a colleague once wrote would lend its
    corroboration to whatever an insider turns it into."""
    if writer is None:
        return None
    if earlier and any(opened.maker != writer and opened.covers(moment_us) for opened in earlier):
        return None
    return writer


def attribute(
    windows: Sequence[Window],
    writer: Maker | None,
    earlier: Collection[Opened[Maker]] | None,
    moment_us: int,
    whom: Callable[[Window], Hashable],
) -> tuple[tuple[Window, Maker | None], ...]:
    """Who alone made each relationship a version opens, and where: ``made_by`` asked of
    each window apart, against the earlier relationships open to the same clinic or
    practitioner (``whom``: the key ``Opened.whom`` holds), and only within their own
    window (the span of those covering ``moment_us``); the part reaching beyond it is
    care of the writer's own making.

    Stored whole as made by no one, a corroborated move corroborated the next move in
    turn, each within the window the one before opened: an insider walked a VIP's
    booking of 400 days ago to today in five moves of 90 days and their read was
    explained as the desk's care. And judged for the record as a whole, a doctor who put
    their own name on a colleague's booking made care "that names them", which silences
    the VIP alert for a read far from the visit: the name is theirs alone."""
    if writer is None:
        return tuple((window, None) for window in windows)
    made: list[tuple[Window, Maker | None]] = []
    for window in windows:
        key = whom(window)
        same = [opened for opened in earlier or () if opened.whom == key]
        if made_by(writer, same, moment_us) is not None:
            made.append((window, writer))
            continue
        low, high = _others_run(same, writer, moment_us)
        start, end = window.valid_from_us, window.valid_until_us
        if start < low:
            made.append((replace(window, valid_until_us=min(end, low - 1)), writer))
        if max(start, low) <= min(end, high):
            inside = replace(window, valid_from_us=max(start, low), valid_until_us=min(end, high))
            made.append((inside, None))
        if end > high:
            made.append((replace(window, valid_from_us=max(start, high + 1)), writer))
    return tuple(made)


def _others_run(
    opened: Collection[Opened[Maker]], writer: Maker, moment_us: int
) -> tuple[int, int]:
    """The span of the unbroken run of ``opened`` (one addressee's relationships) made by
    others than ``writer`` (or by no one alone) that holds ``moment_us``: the care the
    writer's version continues. A run, not only the pieces that hold the moment: a window
    stored in pieces (the part a move continued, no one's alone; the part beyond it, the
    mover's) is one visit's care, and a colleague who writes it again corroborates all of
    it, the mover's part included, rather than taking that part over as their own."""
    others = [o for o in opened if o.maker != writer]
    low = min(o.valid_from_us for o in others if o.covers(moment_us))
    high = max(o.valid_until_us for o in others if o.covers(moment_us))
    grown = True
    while grown:
        grown = False
        for o in others:
            touches = o.valid_from_us <= high + 1 and o.valid_until_us >= low - 1
            if touches and (o.valid_from_us < low or o.valid_until_us > high):
                low, high = min(low, o.valid_from_us), max(high, o.valid_until_us)
                grown = True
    return low, high


def named_elsewhere(event: CareEvent, works_at: Mapping[str, frozenset[str]]) -> tuple[str, ...]:
    """The practitioners a visit or an appointment names who work at clinics of the group
    (``works_at``: their clinics; none for an outside practitioner) but not at its
    clinic. Rule 1 opens the record to everyone such a record names, so a member of
    staff who named them would route the patient to another clinic's clinician without
    a referral: the gate refuses the write. Care teams and referrals (rule 2) name
    others by design and are judged by their writer's own relationship instead."""
    if event.source in VOUCHED or event.clinic_id is None:
        return ()
    return working_elsewhere(event.practitioner_ids, event.clinic_id, works_at)


def _vouched(
    event: CareEvent,
    registered: frozenset[str],
    writer: WriterStanding,
    written_us: int,
    window: CareWindow,
    works_at: Mapping[str, frozenset[str]] | None = None,
    group: frozenset[str] = frozenset(),
) -> Grants:
    if not (writer.system or writer.has_relationship):
        return Grants(
            (),
            f"no relationship: a {event.source} opens a record only when its writer cares "
            "for the patient",
        )
    # Whatever dates it states, a vouching lasts one care window from when it is written.
    low = written_us - window.before_us
    high = written_us + window.after_us
    if event.starts_us is not None:
        low = max(low, event.starts_us - window.before_us)
    if event.ends_us is not None:
        high = min(high, event.ends_us + window.after_us)
    if high < low:
        return Grants((), f"no relationship: the {event.source} has already ended")
    # A referral to a clinic opens the record to its clinicians; a care team's own
    # clinic only where the patient is registered (the team is its members).
    clinic = event.clinic_id
    if clinic is not None and event.source is CareSource.CARE_TEAM and clinic not in registered:
        clinic = None
    if clinic in writer.clinic_ids or (not writer.system and clinic not in group):
        # A clinic of no one here (an outside hospital, a clinic not yet opened) holds
        # no one to open it to now, and would hold it for whoever works there later.
        clinic = None
    others = tuple(ident for ident in event.practitioner_ids if ident != writer.practitioner_id)
    if not writer.system:
        # A practitioner no one here is (a hospital doctor, a made-up id) holds no account
        # to open it to now, and must not be holding it for whichever account is given
        # that id later: a doctor's care team naming "dr-later" opened their patient to
        # the locum an administrator gave that id a month on (adversary round 60).
        known = works_at or {}
        others = tuple(ident for ident in others if known.get(ident))
    made = _windows(clinic, others, low, high)
    if not made:
        return Grants(
            (),
            f"no relationship: the {event.source} names no one of the group but its writer",
        )
    return Grants(made, f"{event.source} by a clinician who cares for the patient")


def _windows(
    clinic_id: str | None, practitioner_ids: tuple[str, ...], low: int, high: int
) -> tuple[Window, ...]:
    made = [Window(clinic_id, None, low, high)] if clinic_id else []
    made += [
        Window(None, practitioner, low, high) for practitioner in sorted(set(practitioner_ids))
    ]
    return tuple(made)
