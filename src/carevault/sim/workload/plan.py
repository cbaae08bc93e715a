"""Which patients come in, when, to whom: the appointment book of the coming days.

Volume follows the seeded history: a clinic group sees, on a weekday, about as many
patients as its patients' visits of the last year divided over the working year
(Saturdays half as many, Sunday and holiday rotas a few). Each day's book starts with
the appointments already in the database (follow-ups booked at earlier visits); the
rest are booked by the front desk or the online portal up to six days ahead, or on the
day as walk-ins. Who comes is weighted by how often they came last year; where and to
whom by where they were seen before, so most patients see their usual physician.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from carevault.sim.elements import at
from carevault.sim.workload.calendar import DayKind, day_kind
from carevault.sim.workload.roster import Roster
from carevault.sim.workload.world import BookedVisit, PatientCard, World

#: Visits on each kind of day relative to a weekday.
DAY_SHARE = {DayKind.WEEKDAY: 1.0, DayKind.SATURDAY: 0.5, DayKind.ROTA: 0.12}
#: Weekdays, Saturdays and rota days of a year, weighted by DAY_SHARE.
WORKING_YEAR = 250 * 1.0 + 51 * 0.5 + 64 * 0.12
BOOKING_LEAD_DAYS = 6
VISIT_MINUTES = {
    "general_practice": 15, "paediatrics": 15, "womens_health": 20, "mental_health": 45,
    "physiotherapy": 30, "dental": 30, "dermatology": 20, "ophthalmology": 20,
}  # fmt: skip
_MORNING = (time(9, 0), time(12, 45))
_AFTERNOON = (time(14, 30), time(18, 15))


@dataclass
class Booking:
    """A visit to book: by whom and when, then (once booked) its appointment."""

    card: PatientCard
    clinic_id: str
    location_id: str
    speciality: str
    practitioner_id: str
    start: datetime
    end: datetime
    book_at: datetime
    online: bool
    household: str | None = None
    appointment_id: str | None = None

    def visit(self) -> BookedVisit | None:
        if self.appointment_id is None:
            return None
        return BookedVisit(
            self.appointment_id,
            self.card.patient_id,
            self.start,
            self.end,
            self.practitioner_id,
            self.location_id,
            self.clinic_id,
            self.speciality,
        )


@dataclass
class AppointmentBook:
    """Bookings by the day they are made and by the day of the visit."""

    to_make: dict[date, list[Booking]] = field(default_factory=dict)
    by_visit_day: dict[date, list[Booking]] = field(default_factory=dict)

    def add(self, booking: Booking) -> None:
        self.to_make.setdefault(booking.book_at.date(), []).append(booking)
        self.by_visit_day.setdefault(booking.start.date(), []).append(booking)


def daily_mean(world: World, day: date) -> float:
    yearly = sum(card.visits_last_year for card in world.patients)
    return yearly / WORKING_YEAR * DAY_SHARE[day_kind(day)]


def visit_start(rng: random.Random, day: date, kind: DayKind) -> datetime:
    window = _MORNING if kind is not DayKind.WEEKDAY or rng.random() < 0.55 else _AFTERNOON
    minutes = (window[1].hour - window[0].hour) * 60 + window[1].minute - window[0].minute
    offset = rng.randrange(0, minutes // 15 + 1) * 15
    return at(day, window[0]) + timedelta(minutes=offset)


class Planner:
    def __init__(
        self, world: World, rng: random.Random, run_start: date, scale: float = 1.0
    ) -> None:
        self.world = world
        #: More (or fewer) visits than the history gives: a small test group needs some.
        self.scale = scale
        self.rng = rng
        self.run_start = run_start
        self.book = AppointmentBook()
        # The seeded patients; those registered during the run come for their own reasons.
        self._population = list(world.patients)
        self._weights = [card.visits_last_year + 0.3 for card in self._population]

    def _where(self, card: PatientCard, duty: Roster) -> tuple[str, str, str] | None:
        """(clinic, speciality, physician) of a visit on ``duty``'s day, if anyone is there."""
        recent = [entry[:3] for entry in card.seen_by[-4:]] or [
            (card.home_clinic_id, "general_practice", "")
        ]
        clinic_id, speciality, usual = self.rng.choice(recent)
        if duty.kind is DayKind.ROTA:
            speciality = "general_practice"
        physicians = duty.physicians(clinic_id, speciality)
        if not physicians:
            return None
        chosen = next((m for m in physicians if m.practitioner_id == usual), None)
        if chosen is None or self.rng.random() < 0.15:
            chosen = self.rng.choice(physicians)
        return clinic_id, speciality, str(chosen.practitioner_id)

    def plan_day(self, day: date, duty: Roster, already: int) -> list[Booking]:
        """Bookings for visits on ``day``, on top of ``already`` booked ones."""
        mean = max(daily_mean(self.world, day) * self.scale - already, 0.0)
        count = int(mean) + (1 if self.rng.random() < mean - int(mean) else 0)
        cards = self.rng.choices(self._population, weights=self._weights, k=count)
        made = []
        for card in cards:
            where = self._where(card, duty)
            if where is None:
                continue
            clinic_id, speciality, practitioner_id = where
            start = visit_start(self.rng, day, duty.kind)
            lead = self.rng.randint(0, BOOKING_LEAD_DAYS)
            book_day = max(day - timedelta(days=lead), self.run_start)
            if book_day == day:
                # Walk-in or same-day call: booked shortly before the visit.
                book_at = start - timedelta(minutes=self.rng.randint(15, 90))
            else:
                book_at = at(book_day, time(9, 0)) + timedelta(minutes=self.rng.randint(0, 540))
            booking = Booking(
                card,
                clinic_id,
                self.world.group.clinic(clinic_id).location_id,
                speciality,
                practitioner_id,
                start,
                start + timedelta(minutes=VISIT_MINUTES[speciality]),
                book_at,
                online=self.rng.random() < 0.25,
            )
            self.book.add(booking)
            made.append(booking)
        return made

    def plan_household(
        self, members: list[PatientCard], household: str, day: date, duty: Roster
    ) -> list[Booking]:
        """A family seen together: back-to-back appointments with one physician."""
        if not members:
            return []
        clinic_id = members[0].home_clinic_id
        speciality = "paediatrics" if duty.physicians(clinic_id, "paediatrics") else (
            "general_practice")  # fmt: skip
        physicians = duty.physicians(clinic_id, speciality)
        if not physicians:
            return []
        physician = self.rng.choice(physicians)
        start = visit_start(self.rng, day, duty.kind)
        book_day = max(day - timedelta(days=self.rng.randint(1, 3)), self.run_start)
        book_at = at(book_day, time(10, 0)) + timedelta(minutes=self.rng.randint(0, 300))
        if book_at >= start:
            book_at = start - timedelta(minutes=60)
        made = []
        for number, card in enumerate(members):
            begin = start + timedelta(minutes=15 * number)
            booking = Booking(
                card,
                clinic_id,
                self.world.group.clinic(clinic_id).location_id,
                speciality,
                str(physician.practitioner_id),
                begin,
                begin + timedelta(minutes=15),
                book_at + timedelta(minutes=number),
                online=False,
                household=household,
            )
            self.book.add(booking)
            made.append(booking)
        return made
