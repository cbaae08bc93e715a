"""Work away from the consulting room: bookings, day lists, billing, reviews, registrations.

Some of it looks like an attack and is not, and a detector must tell the difference:
a physician reviewing forty charts of their own diabetic patients in an afternoon, a
colleague covering another clinic, a family seen one after another, many staff opening
the record of a public figure who is being treated at their clinic that day.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta
from typing import Any

from carevault.sim.elements import at
from carevault.sim.facts import StaffMember
from carevault.sim.workload import forms
from carevault.sim.workload.clinic import created_id, lookup
from carevault.sim.workload.desk import Desk
from carevault.sim.workload.plan import Booking
from carevault.sim.workload.staffroom import Staffroom
from carevault.sim.workload.timeline import Activity
from carevault.sim.workload.world import BookedVisit, PatientCard


def make_booking(room: Staffroom, booking: Booking) -> Activity:
    """The front desk (or the online portal) books a planned visit."""
    if booking.online:
        member: StaffMember | None = room.world.group.member("svc.booking-portal")
    else:
        member = room.pick(booking.clinic_id, "front_desk")
    if member is None or (desk := room.desk(member)) is None:
        return
    if booking.online:
        desk.search("Patient", [("identifier", booking.card.hkid)])
    else:
        lookup(room.rng, desk, booking.card)
    yield room.rng.uniform(15, 60)
    slot = _free_slot(room, desk, booking)
    reply = desk.create(
        forms.appointment(
            booking.card.patient_id,
            booking.practitioner_id,
            booking.location_id,
            booking.speciality,
            booking.start,
            booking.end,
            room.services.clock(),
            slot_id=str(slot["id"]) if slot else None,
        )
    )
    booking.appointment_id = created_id(reply)
    if slot is not None and booking.appointment_id is not None:
        slot.pop("meta", None)
        desk.update({**slot, "status": "busy"})


def _free_slot(room: Staffroom, desk: Desk, booking: Booking) -> dict[str, Any] | None:
    """A free Slot of the physician's schedule there that day, if the published timetable
    reaches that far; the booking then takes the slot's time."""
    schedule = room.world.schedule_of(booking.practitioner_id, booking.location_id)
    if schedule is None or booking.start.date() > room.world.group.today + timedelta(days=6):
        return None
    found = desk.search(
        "Slot",
        [
            ("schedule", f"Schedule/{schedule}"),
            ("start", booking.start.date().isoformat()),
            ("status", "free"),
            ("_count", "20"),
        ],  # fmt: skip
    )
    soon = room.services.clock() + timedelta(minutes=15)
    slots = [s for s in found.resources() if datetime.fromisoformat(str(s["start"])) > soon]
    if not slots:
        return None
    slot = room.rng.choice(slots)
    start = datetime.fromisoformat(str(slot["start"]))
    booking.end = start + (booking.end - booking.start)
    booking.start = start
    return slot


def day_list(room: Staffroom, clinic_id: str, day: date) -> Activity:
    """Morning: the clinic manager prints the day's appointment list."""
    manager = room.pick(clinic_id, "clinic_manager") or room.pick(clinic_id, "front_desk")
    if manager is None or (desk := room.desk(manager)) is None:
        return
    location = room.world.group.clinic(clinic_id).location_id
    desk.search(
        "Appointment",
        [("location", f"Location/{location}"), ("date", day.isoformat()), ("_count", "200")],
    )
    yield 1.0


def billing_run(room: Staffroom, seen: list[tuple[PatientCard, BookedVisit]]) -> Activity:
    """Month end: billing claims each insured visit of the month from the patient's insurer."""
    clerks = room.duty.of("", "billing")
    if not clerks:
        return
    for number, (card, visit) in enumerate(seen):
        clerk = clerks[number % len(clerks)]
        desk = room.desk(clerk)
        if desk is None:
            continue
        cover = desk.search("Coverage", [("patient", card.patient_id)])
        coverages = cover.resources()
        if coverages:
            desk.create(
                forms.claim(
                    card.patient_id,
                    str(coverages[0]["id"]),
                    visit.clinic_id,
                    visit.speciality,
                    visit.start.date(),
                    room.services.clock(),
                )
            )
        yield room.rng.uniform(30, 120)
    seen.clear()


def chart_review(room: Staffroom, physician: StaffMember, cards: list[PatientCard]) -> Activity:
    """An afternoon's audit of a physician's own chronic patients: many charts, all theirs."""
    desk = room.desk(physician)
    if desk is None:
        return
    for card in cards:
        desk.read("Patient", card.patient_id)
        desk.search("Observation", [("patient", card.patient_id), ("_count", "50")])
        desk.search("MedicationRequest", [("patient", card.patient_id)])
        yield room.rng.uniform(60, 240)


def covered_visits(room: Staffroom, visits: list[BookedVisit], cover: StaffMember) -> Activity:
    """A colleague on leave: the front desk moves their appointments to the one covering."""
    front = room.pick(visits[0].clinic_id, "front_desk") if visits else None
    if front is None or (desk := room.desk(front)) is None:
        return
    for visit in visits:
        current = desk.read("Appointment", visit.appointment_id)
        if current.ok:
            body = current.document()
            body.pop("meta", None)
            for participant in body.get("participant", []):
                reference = participant.get("actor", {}).get("reference", "")
                if reference == f"Practitioner/{visit.practitioner_id}":
                    participant["actor"] = {"reference": f"Practitioner/{cover.practitioner_id}"}
            desk.update(body)
        yield room.rng.uniform(20, 60)


def news_event(
    room: Staffroom, card: PatientCard, clinic_id: str, team: list[StaffMember], start: datetime
) -> Activity:
    """A public figure is treated at the clinic: the front desk books the visit with the
    lead physician for the morning, a care team forms and each member opens the record
    during the day (the visit and the care team make every one of these accesses
    explained, on the day of the visit, as a VIP's record asks)."""
    lead = team[0]
    desk = room.desk(lead)
    if desk is None:
        return
    # The desk books (or, with none on duty, another of the team): a visit the lead
    # booked alone would explain none of the lead's own reads.
    front = room.pick(clinic_id, "front_desk")
    bookers = [front, *team[1:]] if front is not None else team[1:]
    booker = next((found for m in bookers if (found := room.desk(m)) is not None), desk)
    location = room.world.group.clinic(clinic_id).location_id
    speciality = lead.speciality or "general_practice"
    ends = start + timedelta(minutes=30)
    booker.create(
        forms.appointment(
            card.patient_id, str(lead.practitioner_id), location, speciality, start, ends, start
        )
    )
    members = [str(m.practitioner_id) for m in team]
    desk.create(forms.care_team(card.patient_id, clinic_id, members, start,
                                start + timedelta(days=7)))  # fmt: skip
    for member in team:
        yield room.rng.uniform(300, 2400)
        colleague = room.desk(member)
        if colleague is None:
            continue
        colleague.read("Patient", card.patient_id)
        colleague.search("Observation", [("patient", card.patient_id)])
        colleague.search("Condition", [("patient", card.patient_id)])


def register(room: Staffroom, clinic_id: str, patients: list[dict[str, object]],
             cards: list[PatientCard]) -> Activity:  # fmt: skip
    """New patients registered at the front desk; their cards get the new ids."""
    front = room.pick(clinic_id, "front_desk")
    if front is None or (desk := room.desk(front)) is None:
        return
    for resource, card in zip(patients, cards, strict=True):
        desk.search("Patient", [("identifier", card.hkid)])
        new_id = created_id(desk.create(resource))
        if new_id is not None:
            room.world.add_patient(replace(card, patient_id=new_id))
        yield room.rng.uniform(120, 400)


def opening(day: date, minutes: int = 0) -> datetime:
    return at(day, time(8, 30)) + timedelta(minutes=minutes)
