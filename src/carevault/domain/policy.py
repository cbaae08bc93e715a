"""The access decision: pure, no I/O; the gate gathers the facts and asks here.

``decide`` answers one question: may this actor read (or write) these data
categories of this patient's record, and which of them? The reason is always
given, for the audit ledger and for a clear 403.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from carevault.domain.categories import HEALTH_CATEGORIES, DataCategory
from carevault.domain.roles import (
    CLINIC_RECORD_WRITERS,
    CLINICIANS,
    GROUP_WIDE,
    RIGHTS,
    Right,
    Role,
)


@dataclass(frozen=True)
class Actor:
    """Who acts: a staff member or an integration client, after sign-in."""

    principal: str
    role: Role
    clinic_ids: frozenset[str]
    practitioner_id: str | None = None
    #: Categories the SMART scopes of the token allow, if the token narrows them.
    scope_categories: frozenset[DataCategory] | None = None
    account_id: str | None = None


@dataclass(frozen=True)
class Target:
    """What is known, in the clear, about the record being touched."""

    #: The patient's pseudonym; None for resources that are no one's patient data.
    patient_pseudonym: str | None
    #: Clinics the record belongs to (the resource's, and the patient's home clinic).
    clinic_ids: frozenset[str]
    care_relationship: bool = False
    break_glass: bool = False
    #: A patient's record (an Observation, an Appointment) that names no patient the
    #: vault found: no directory record. Only its clinic's staff reach it, and no
    #: clinician its health data (no one has a care relationship with no one).
    orphan: bool = False
    #: Clinics the patient is at (their home, their registrations), apart from where the
    #: record itself is placed; None: not told (the same as ``clinic_ids``).
    patient_clinics: frozenset[str] | None = None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    #: Of the categories asked for, those the actor gets; the rest are withheld.
    granted: frozenset[DataCategory]
    withheld: frozenset[DataCategory]
    reason: str
    break_glass_used: bool = False
    notes: tuple[str, ...] = field(default=())


#: Roles outside the clinicians that write health data or claims: only about a patient
#: of their own clinics (a clinician needs a care relationship instead).
PATIENT_BOUND_WRITERS = frozenset({Role.INTEGRATION})
#: What records care: health data, and a claim for a service.
CARE_CATEGORIES = HEALTH_CATEGORIES | {DataCategory.FINANCIAL}


def rights_of(actor: Actor, category: DataCategory) -> frozenset[Right]:
    rights = RIGHTS[actor.role].get(category, frozenset())
    if actor.scope_categories is not None and category not in actor.scope_categories:
        return frozenset()
    return rights


def decide(
    actor: Actor, right: Right, categories: Iterable[DataCategory], target: Target
) -> Decision:
    """Grant each asked category the actor's role and relationship allow; allowed if any.

    A write must be allowed for every category it touches: a partial write
    would change data the writer cannot see.
    """
    asked = frozenset(categories)
    in_clinic = actor.role in GROUP_WIDE or bool(actor.clinic_ids & target.clinic_ids)
    directory = target.patient_pseudonym is None and not target.orphan
    granted: set[DataCategory] = set()
    reasons: dict[DataCategory, str] = {}
    used_glass = False
    for category in asked:
        if right not in rights_of(actor, category):
            reasons[category] = f"{actor.role} may not {right} {category}"
        elif directory:
            # Anyone may read the directory; a clinic's own records (the clinic, its
            # locations, schedules and slots) are changed only by that clinic's staff.
            if right is Right.WRITE and target.clinic_ids and not in_clinic:
                reasons[category] = "the record belongs to a clinic that is not yours"
            else:
                granted.add(category)
        elif (
            right is Right.WRITE
            and actor.role in PATIENT_BOUND_WRITERS
            and category in CARE_CATEGORIES
            and not actor.clinic_ids & _patients_clinics(target)
        ):
            # Placing a record at its own clinic opens nothing, but health data or a
            # claim written there about another clinic's patient is in that patient's
            # chart, where their clinic reads it, and says the patient was seen (adversary
            # round 80: an app of one clinic wrote visits with reasons and claims into
            # another clinic's patient's chart, which no doctor without care may).
            reasons[category] = "the patient is not at any of your clinics"
        elif category in HEALTH_CATEGORIES and actor.role in CLINICIANS:
            if target.care_relationship:
                granted.add(category)
            elif target.break_glass:
                granted.add(category)
                used_glass = True
            else:
                reasons[category] = f"no care relationship for {category}"
        elif in_clinic or (
            actor.role in CLINICIANS
            and (target.care_relationship or (target.break_glass and right is Right.READ))
        ):
            # Breaking the glass opens another clinic's patient's record to read (and
            # their health record to treat), never to rewrite who they are or where they
            # are reached: an emergency needs no new phone number.
            granted.add(category)
            used_glass = used_glass or (not in_clinic and not target.care_relationship)
        elif target.break_glass and actor.role in CLINICIANS:
            reasons[category] = f"breaking the glass does not open {category} to change"
        else:
            reasons[category] = "the patient is not at any of your clinics"
    withheld = asked - granted
    if right is Right.WRITE and withheld:
        return Decision(False, frozenset(), asked, "; ".join(sorted(set(reasons.values()))))
    if not granted:
        reason = "; ".join(sorted(set(reasons.values()))) or "nothing requested"
        return Decision(False, frozenset(), asked, reason)
    reason = "break the glass" if used_glass else "role and relationship allow it"
    if withheld:
        reason += f"; withheld: {', '.join(sorted(withheld))}"
    return Decision(True, frozenset(granted), frozenset(withheld), reason, used_glass)


def _patients_clinics(target: Target) -> frozenset[str]:
    return target.clinic_ids if target.patient_clinics is None else target.patient_clinics


def may_place(actor: Actor, clinic_id: str | None) -> bool:
    """Whether ``actor`` may put a patient's record at ``clinic_id``: only at a clinic
    where they work (or anywhere, for the group-wide roles). Otherwise staff of one
    clinic could push a patient's records into another clinic's view."""
    return clinic_id is None or actor.role in GROUP_WIDE or clinic_id in actor.clinic_ids


def writes_elsewhere(actor: Actor, placed_at: str | None, registered: frozenset[str]) -> bool:
    """Whether ``actor``, changing a patient's record placed at clinic ``placed_at``
    (the patient registered at ``registered``), would write into another clinic's record
    for a patient that clinic does not have: staff of ``placed_at`` read the record
    because it is placed there, and would read what ``actor`` wrote.

    A desk or doctor may write a booking or visit at their own clinic for another
    clinic's patient (it opens nothing: issue 9). The patient's own clinic sees it among
    the patient's records; had its desk written a note or a new time into it, the
    planter read that note (adversary round 60). Such a record is deleted by the
    patient's clinic, not changed; the clinic where it is placed changes its own. Where
    the patient is registered at ``placed_at`` too, that clinic has them already, and
    the group-wide roles are everywhere."""
    return outside_own_clinics(actor, placed_at) and placed_at not in registered


def outside_own_clinics(actor: Actor, placed_at: str | None) -> bool:
    """Whether a record placed at clinic ``placed_at`` is outside ``actor``'s own
    clinics (the group-wide roles are everywhere): only then do the patient's
    registrations decide whether ``actor`` may change it (``writes_elsewhere``)."""
    return (
        placed_at is not None and actor.role not in GROUP_WIDE and placed_at not in actor.clinic_ids
    )


def may_move(actor: Actor, belonged_to: frozenset[str], placed_at: str | None) -> bool:
    """Whether ``actor`` may move a patient's record that belonged to the clinics
    ``belonged_to`` (its own clinic and every clinic where its patient is registered) so
    that it is placed at ``placed_at``: to a clinic it belonged to already (or to none),
    which opens it to no one new; or anywhere ``may_place`` allows, by a writer whose own
    clinic it already belonged to.

    A writer whose right to change the record is theirs alone (a clinician referred the
    patient, or breaking the glass) and not their clinic's would otherwise open it to
    their whole clinic, for good: Tuen Mun's doctor, referred Tsuen Wan's patient, named
    his clinic as the provider of the patient's Tsuen Wan visit and his front desk read
    it; the visit's care went with it, so Tsuen Wan's own doctors no longer read the
    patient's chart (adversary round 64). A care window or a grant lasts a while and is
    the person's; where a record is placed is the clinic's and has no end."""
    if placed_at is None or placed_at in belonged_to or actor.role in GROUP_WIDE:
        return True
    return bool(actor.clinic_ids & belonged_to)


def may_delete(actor: Actor, belonged_to: frozenset[str]) -> bool:
    """Whether ``actor`` may delete a patient's record that belongs to the clinics
    ``belonged_to`` (its own clinic and every clinic where its patient is registered):
    only as staff of one of them (or of the group as a whole).

    A clinician's care of their own (a referral, a care team, a grant) opens another
    clinic's records to read and change, not to take away: Tuen Mun's doctor, referred
    Tsuen Wan's patient, deleted the patient's one Tsuen Wan visit, and with it the care
    that visit opened to Tsuen Wan's own doctors, who no longer read the patient's chart
    (adversary round 64). The patient's own clinic still deletes a booking another
    clinic planted for them (``writes_elsewhere``)."""
    return actor.role in GROUP_WIDE or bool(actor.clinic_ids & belonged_to)


def placed_elsewhere(
    actor: Actor, clinic_id: str, works_at: Mapping[str, frozenset[str]]
) -> tuple[str, ...]:
    """The practitioners a directory record placed at the group's clinic ``clinic_id``
    names (a PractitionerRole's practitioner, a Schedule's actors) who work at clinics
    of the group (``works_at``: their clinics; none for an outside practitioner) but not
    at that one. Where a doctor works is their staff account's clinics; a clinic's staff
    who wrote that another clinic's doctor works or takes bookings at theirs would make
    every app that routes bookings by these records show, and book, what is not so. The
    roles that keep the directory's clinic records (``CLINIC_RECORD_WRITERS``: the
    directory's integration, which may learn of a move before the staff accounts do)
    are not held to it."""
    if actor.role in CLINIC_RECORD_WRITERS:
        return ()
    return working_elsewhere(works_at, clinic_id, works_at)


def claims_directory(
    actor: Actor, belonged_to: frozenset[str], placed_at: str | None, group: frozenset[str]
) -> bool:
    """Whether ``actor``, changing a directory record (a Location, a PractitionerRole, a
    Schedule, a Slot) that belonged to the group's clinics ``belonged_to`` (none: an
    outside hospital's ward, a room written without ``managingOrganization``), would
    place it at ``placed_at``, a clinic of the ``group`` it was not at: claim it.

    Such a record was anyone's to write, and what names it is placed where it is: a
    visit at the ward, a booking with the role. A desk that named its clinic on it had
    every record later placed through it placed at its clinic, and a visit or booking
    the system loads registers its patient where it is placed, so another clinic's
    patients were registered at the desk's clinic (adversary round 60). A clinic's
    staff create their own directory at their clinic; the system and the directory's
    integration app (``CLINIC_RECORD_WRITERS``), which keep the directory, place the
    rest."""
    if actor.role in CLINIC_RECORD_WRITERS or placed_at is None:
        return False
    # The actor's own clinics are the group's, whatever a cached list of them says.
    ours = placed_at in group or placed_at in actor.clinic_ids
    return ours and placed_at not in belonged_to


def working_elsewhere(
    practitioners: Iterable[str], clinic_id: str, works_at: Mapping[str, frozenset[str]]
) -> tuple[str, ...]:
    """Those of ``practitioners`` who work at clinics of the group (``works_at``: their
    staff accounts' clinics; none for an outside practitioner) but not at ``clinic_id``."""
    return tuple(
        practitioner
        for practitioner in practitioners
        if works_at.get(practitioner) and clinic_id not in works_at[practitioner]
    )
