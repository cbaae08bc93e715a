"""Physicians' Schedules and Slots for the coming week, relative to ``today``.

Clinics open Monday to Friday 09:00-13:00 and 14:30-18:30, Saturday mornings, and
Sunday mornings with one general practitioner on the rota. Each physician takes one
weekday off; floaters work their clinics on alternate days. A share of each day's
slots is already busy, more so for the nearer days.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

from carevault.sim.codes import SLOT_MINUTES, SPECIALITIES, SPECIALITY_LABELS
from carevault.sim.elements import at, instant, new_id, ref
from carevault.sim.facts import BookableSlot, Clinic, StaffMember

HORIZON_DAYS = 7
WEEKDAY_SESSIONS = ((time(9, 0), time(13, 0)), (time(14, 30), time(18, 30)))
WEEKEND_SESSIONS = ((time(9, 0), time(13, 0)),)
#: Share of slots already booked, by how many days ahead they are.
BUSY_SHARE = (0.75, 0.65, 0.55, 0.45, 0.4, 0.35, 0.3)


def _sessions(day: date, on_sunday_rota: bool) -> tuple[tuple[time, time], ...]:
    if day.weekday() < 5:
        return WEEKDAY_SESSIONS
    if day.weekday() == 5 or on_sunday_rota:
        return WEEKEND_SESSIONS
    return ()


def _slot_times(day: date, sessions: Iterable[tuple[time, time]], minutes: int) -> list[datetime]:
    starts = []
    step = timedelta(minutes=minutes)
    for opening, closing in sessions:
        moment, end = at(day, opening), at(day, closing)
        while moment + step <= end:
            starts.append(moment)
            moment += step
    return starts


def _sunday_rota(rng: random.Random, physicians: list[StaffMember]) -> set[str]:
    """One general practitioner per clinic works Sunday mornings."""
    rota: set[str] = set()
    by_clinic: dict[str, list[StaffMember]] = {}
    for member in physicians:
        if member.speciality == "general_practice" and len(member.clinic_ids) == 1:
            by_clinic.setdefault(member.clinic_ids[0], []).append(member)
    for clinic_id in sorted(by_clinic):
        rota.add(rng.choice(by_clinic[clinic_id]).username)
    return rota


def _schedule(
    rng: random.Random, member: StaffMember, clinic: Clinic, today: date
) -> dict[str, Any]:
    speciality = str(member.speciality)
    return {
        "resourceType": "Schedule",
        "id": new_id(rng),
        "active": True,
        "specialty": [SPECIALITIES[speciality].concept(SPECIALITY_LABELS[speciality][0])],
        "actor": [
            {**ref("Practitioner", str(member.practitioner_id)), "display": member.display_name},
            {**ref("Location", clinic.location_id), "display": clinic.name},
        ],
        "planningHorizon": {
            "start": instant(at(today, time(0, 0))),
            "end": instant(at(today + timedelta(days=HORIZON_DAYS), time(0, 0))),
        },
    }


def build_schedules(
    rng: random.Random, staff: list[StaffMember], clinics: dict[str, Clinic], today: date
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[BookableSlot]]:
    """Schedules and Slots of every physician at every clinic they work at."""
    physicians = [m for m in staff if m.role == "physician"]
    sunday_rota = _sunday_rota(rng, physicians)
    schedules: list[dict[str, Any]] = []
    slots: list[dict[str, Any]] = []
    bookable: list[BookableSlot] = []
    for member in physicians:
        speciality = str(member.speciality)
        day_off = rng.randrange(5)
        schedule_ids = {}
        for clinic_id in member.clinic_ids:
            schedule = _schedule(rng, member, clinics[clinic_id], today)
            schedule_ids[clinic_id] = schedule["id"]
            schedules.append(schedule)
        for offset in range(HORIZON_DAYS):
            day = today + timedelta(days=offset)
            if day.weekday() == day_off:
                continue
            # Floaters alternate between their clinics day by day.
            clinic = clinics[member.clinic_ids[day.toordinal() % len(member.clinic_ids)]]
            sessions = _sessions(day, member.username in sunday_rota)
            minutes = SLOT_MINUTES[speciality]
            for start in _slot_times(day, sessions, minutes):
                busy = rng.random() < BUSY_SHARE[offset]
                end = start + timedelta(minutes=minutes)
                slot_id = new_id(rng)
                slots.append({
                    "resourceType": "Slot",
                    "id": slot_id,
                    "schedule": ref("Schedule", schedule_ids[clinic.id]),
                    "status": "busy" if busy else "free",
                    "start": instant(start),
                    "end": instant(end),
                })  # fmt: skip
                bookable.append(BookableSlot(
                    slot_id, str(member.practitioner_id), clinic.id, clinic.location_id,
                    speciality, start, end, busy,
                ))  # fmt: skip
    return schedules, slots, bookable
