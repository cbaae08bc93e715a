"""Appointments: those behind past visits, missed ones, and the bookings of the coming days.

Bookings in the group's slot horizon take one of the group's busy Slots of the right
clinic, speciality and day, each slot at most once, so that an appointment, its
physician and its slot agree. The online booking system is taken to have started 18
months ago: older visits have no appointment record.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

from carevault.sim.chart import VISIT_MINUTES, Chart, Visit
from carevault.sim.codes import ENCOUNTER_TYPES, SPECIALITIES, SPECIALITY_LABELS
from carevault.sim.elements import at, instant
from carevault.sim.facts import BookableSlot
from carevault.sim.group import ClinicGroup
from carevault.sim.schedule import HORIZON_DAYS

BOOKING_SINCE = timedelta(days=548)
#: How far ahead patients book follow-ups without a slot (slots exist for a week only).
FOLLOW_UP_HORIZON = timedelta(days=120)
_APPOINTMENT_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0276"
_TYPE_DISPLAY = {"ROUTINE": "Routine appointment - default if not valued",
                 "FOLLOWUP": "A follow up visit from a previous appointment",
                 "CHECKUP": "A routine check-up, such as an annual physical",
                 "WALKIN": "A previously unscheduled walk-in visit"}  # fmt: skip
_CANCELLATION_REASON = "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason"


class SlotBook:
    """The group's busy slots for the coming week, handed out once each."""

    def __init__(self, group: ClinicGroup, rng: random.Random, today: date) -> None:
        self._pools: dict[tuple[str, str, date], list[BookableSlot]] = {}
        if group.today != today:
            return  # the group's slots belong to another week: book without slots
        for slot in group.bookable_slots:
            if slot.busy:
                key = (slot.clinic_id, slot.speciality, slot.start.date())
                self._pools.setdefault(key, []).append(slot)
        for pool in self._pools.values():
            rng.shuffle(pool)

    def take(self, clinic_id: str, speciality: str, day: date) -> BookableSlot | None:
        pool = self._pools.get((clinic_id, speciality, day))
        return pool.pop() if pool else None


def appointment(
    chart: Chart,
    speciality: str,
    location_id: str,
    practitioner_id: str,
    start: datetime,
    end: datetime,
    status: str,
    kind: str = "ROUTINE",
    slot_id: str | None = None,
) -> str:
    label = SPECIALITY_LABELS[speciality][0]
    concept = SPECIALITIES[speciality]
    # Booked days or weeks before, and never after the morning of today.
    created = min(
        start - timedelta(days=chart.rng.randint(1, 21), hours=chart.rng.randint(0, 8)),
        at(chart.today, time(8, 0)) - timedelta(minutes=chart.rng.randint(1, 600)),
    )
    body: dict[str, Any] = {
        "status": status,
        "serviceType": [concept.concept(label)],
        "specialty": [concept.concept(label)],
        "appointmentType": {"coding": [{"system": _APPOINTMENT_TYPE, "code": kind,
                                        "display": _TYPE_DISPLAY[kind]}]},
        "start": instant(start),
        "end": instant(end),
        "minutesDuration": int((end - start).total_seconds() // 60),
    }  # fmt: skip
    if slot_id is not None:
        body["slot"] = [{"reference": f"Slot/{slot_id}"}]
    body["created"] = instant(created)
    if status == "cancelled":
        body["cancelationReason"] = {
            "coding": [{"system": _CANCELLATION_REASON, "code": "pat", "display": "Patient"}]
        }
    body["participant"] = [
        {"actor": chart.subject, "required": "required", "status": "accepted"},
        {"actor": {"reference": f"Practitioner/{practitioner_id}"}, "required": "required",
         "status": "accepted"},
        {"actor": {"reference": f"Location/{location_id}"}, "required": "required",
         "status": "accepted"},
    ]  # fmt: skip
    return chart.add("Appointment", body)


def _for_visit(chart: Chart, visit: Visit, status: str, shift: timedelta = timedelta()) -> str:
    follow_up = visit.encounter["type"][0]["coding"][0]["code"] == ENCOUNTER_TYPES["follow_up"].code
    kind = "FOLLOWUP" if follow_up else "ROUTINE"
    return appointment(
        chart, visit.speciality, visit.clinic.location_id,
        str(visit.physician.practitioner_id), visit.start + shift, visit.end + shift, status, kind,
    )  # fmt: skip


def book_past_visits(chart: Chart) -> None:
    """Appointments behind most recent visits, and some that were missed or cancelled."""
    since = chart.today - BOOKING_SINCE
    for visit in chart.visits:
        if visit.start.date() < since or chart.rng.random() >= 0.6:
            continue
        appointment_id = _for_visit(chart, visit, "fulfilled")
        visit.encounter["appointment"] = [{"reference": f"Appointment/{appointment_id}"}]
        if chart.rng.random() < 0.08:
            earlier = timedelta(days=-chart.rng.randint(7, 28))
            if (visit.start + earlier).date() >= since:
                _for_visit(chart, visit, chart.rng.choice(("noshow", "cancelled")), earlier)


def book_upcoming(chart: Chart, slots: SlotBook, due: Iterable[tuple[date, str]]) -> None:
    """Bookings for the follow-ups ``due`` (day, speciality) from today on."""
    horizon_end = chart.today + timedelta(days=HORIZON_DAYS)
    for day, speciality in due:
        if not chart.today <= day <= chart.today + FOLLOW_UP_HORIZON:
            continue
        clinic = chart.clinic_for(speciality)
        if day < horizon_end:
            slot = slots.take(clinic.id, speciality, day)
            if slot is not None:
                appointment(chart, speciality, clinic.location_id, slot.practitioner_id,
                            slot.start, slot.end, "booked", "FOLLOWUP", slot.slot_id)  # fmt: skip
                continue
            # That day is full: the next opening is after the published timetable.
            day = horizon_end + timedelta(days=day.toordinal() % 3)
        physician = chart.physician(clinic, speciality)
        start = chart.appointment_time(day)
        end = start + timedelta(minutes=VISIT_MINUTES[speciality])
        appointment(chart, speciality, clinic.location_id, str(physician.practitioner_id),
                    start, end, "booked", "FOLLOWUP")  # fmt: skip
