"""A simulated run: day after day of the group's work on the real gate, attacks injected.

Every morning the run plans the day (who is on duty, the appointment book), starts each
piece of work as an activity on the timeline, and runs the timeline to midnight. The
harmless look-alikes are scheduled once, from the seed: households registered on the
first day and seen together later, staff who are also patients, a colleague covering
another clinic each week, physicians' chart reviews, and a news day when a public
figure is treated and many staff open their record.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from carevault.bootstrap import Services
from carevault.clock import to_micros
from carevault.sim.elements import at
from carevault.sim.workload import office
from carevault.sim.workload.calendar import DayKind, day_kind, is_working_day, month_end
from carevault.sim.workload.clinic import Visits, lab_results, until
from carevault.sim.workload.hr import flag_public_figure, record_staff
from carevault.sim.workload.lookalikes import Lookalikes, plan_lookalikes
from carevault.sim.workload.plan import BOOKING_LEAD_DAYS, Booking, Planner, visit_start
from carevault.sim.workload.roster import (
    BOOKING_APP,
    BOOKING_SCOPE,
    CLINIC_APP,
    LAB_APP,
    LAB_SCOPE,
    Roster,
    roster,
    works_at,
)
from carevault.sim.workload.staffroom import Staffroom
from carevault.sim.workload.timeline import Activity, SimClock, Timeline
from carevault.sim.workload.world import BookedVisit, PatientCard, World

SYSTEM = "system:simulator"


class Attack(Protocol):
    """An attack scenario as the run drives it (see ``carevault.sim.attack``)."""

    name: str

    def absent(self, world: World) -> frozenset[str]:
        """Usernames whose owners do no normal work during the run (a leaver's account)."""
        ...

    def schedule(self, run: Simulation, day: date) -> None:
        """Start the day's malicious activities on the run's timeline."""
        ...


@dataclass
class DayFigures:
    day: str
    kind: str
    holiday: bool
    visits: int
    requests: int
    refused: int
    ledger_entries: int
    unwrap_entries: int
    wall_seconds: float


@dataclass
class Simulation:
    services: Services
    world: World
    clock: SimClock
    start: date
    days: int
    seed: int
    attacks: Sequence[Attack] = ()
    visit_scale: float = 1.0
    #: Told each day's figures as the day ends (the command line prints them).
    progress: Callable[[DayFigures], None] | None = None
    figures: list[DayFigures] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"carevault-workload:{self.seed}")
        self.timeline = Timeline(self.clock)
        self.absent = frozenset(
            name for attack in self.attacks for name in attack.absent(self.world)
        )
        self.room = Staffroom(
            self.services, self.world, self.rng, roster(self.world.group, self.start)
        )
        self.planner = Planner(self.world, self.rng, self.start, self.visit_scale)
        self.lab_orders: list[tuple[PatientCard, str]] = []
        self.insured_seen: list[tuple[PatientCard, BookedVisit]] = []
        self.visits = Visits(self.room, self._follow_up, self.lab_orders, self.insured_seen)
        self.lookalikes: Lookalikes = plan_lookalikes(self)
        self.wall_started = time.perf_counter()

    @property
    def end(self) -> date:
        return self.start + timedelta(days=self.days)

    def duty(self, day: date) -> Roster:
        return roster(self.world.group, day, self.absent | self.lookalikes.on_leave(day))

    # --- the run -------------------------------------------------------------------------------

    def register_apps(self) -> None:
        clients = self.services.clients
        for client_id, name, confidential, scope in (
            (CLINIC_APP, "Clinic desktop", False, "openid fhirUser offline_access user/*.cruds"),
            (LAB_APP, "Laboratory results interface", True, LAB_SCOPE),
            (BOOKING_APP, "Online booking portal", True, BOOKING_SCOPE),
        ):
            if clients.get(client_id) is None:
                self.services.admin.add_client(
                    SYSTEM,
                    client_id,
                    name,
                    confidential=confidential,
                    scopes=scope,
                    redirect_uris=() if confidential else ("http://127.0.0.1:53682/callback",),
                    clinic_ids=[c.id for c in self.world.group.clinics] if confidential else (),
                )

    def run(self) -> list[DayFigures]:
        self.register_apps()
        record_staff(self)
        flag_public_figure(self)
        for offset in range(self.days):
            self.run_day(self.start + timedelta(days=offset))
        return self.figures

    def run_day(self, day: date) -> None:
        wall = time.perf_counter()
        audit_before = self.services.audit_ledger.store.head()[0]
        unwrap_before = self.services.unwrap_ledger.store.head()[0]
        self.clock.set(at(day, datetime.min.time()))
        duty = self.duty(day)
        self.room.new_day(duty)
        self.room.requests = self.room.refused = 0
        held = self.visits.consultations
        self._plan_ahead(day)
        visits = self._visits_of(day, duty)
        visits = self.lookalikes.schedule(self, day, visits)
        for visit in visits:
            self.timeline.start(visit.start - timedelta(minutes=15), self.visits.activity(visit))
        for booking in self.planner.book.to_make.pop(day, []):
            self.timeline.start(booking.book_at, self._booked_then_seen(booking, day))
        if duty.kind is not DayKind.ROTA:
            for clinic in self.world.group.clinics:
                moment = office.opening(day, self.rng.randint(0, 25))
                self.timeline.start(moment, office.day_list(self.room, clinic.id, day))
        if self.lab_orders and duty.kind is DayKind.WEEKDAY:
            orders = list(self.lab_orders)
            self.lab_orders.clear()
            self.timeline.start(at(day, datetime.min.time()) + timedelta(hours=7),
                                lab_results(self.room, orders))  # fmt: skip
        if month_end(day):
            self.timeline.start(at(day, datetime.min.time()) + timedelta(hours=15),
                                office.billing_run(self.room, self.insured_seen))  # fmt: skip
        for attack in self.attacks:
            attack.schedule(self, day)
        self.timeline.run_until(at(day + timedelta(days=1), datetime.min.time()))
        self.figures.append(
            DayFigures(
                day=day.isoformat(),
                kind=duty.kind.value,
                holiday=duty.kind is DayKind.ROTA and day.weekday() != 6,
                visits=self.visits.consultations - held,
                requests=self.room.requests,
                refused=self.room.refused,
                ledger_entries=self.services.audit_ledger.store.head()[0] - audit_before,
                unwrap_entries=self.services.unwrap_ledger.store.head()[0] - unwrap_before,
                wall_seconds=round(time.perf_counter() - wall, 2),
            )
        )
        if self.progress is not None:
            self.progress(self.figures[-1])

    # --- the appointment book ----------------------------------------------------------------

    def _plan_ahead(self, day: date) -> None:
        first = day == self.start
        horizon = range(0, BOOKING_LEAD_DAYS + 1) if first else range(BOOKING_LEAD_DAYS, 7)
        for ahead in horizon:
            visit_day = day + timedelta(days=ahead)
            duty = self.duty(visit_day)
            seeded = sum(1 for visit in self.world.booked if visit.start.date() == visit_day)
            self.planner.plan_day(visit_day, duty, seeded)

    def _visits_of(self, day: date, duty: Roster) -> list[BookedVisit]:
        # The seeded appointments follow the seed's own timetable: their physicians come in.
        seeded = [visit for visit in self.world.booked if visit.start.date() == day]
        made = [b.visit() for b in self.planner.book.by_visit_day.pop(day, [])]
        return sorted([*seeded, *(v for v in made if v is not None)], key=lambda v: v.start)

    def _booked_then_seen(self, booking: Booking, day: date) -> Activity:
        """A booking; if it is for today (a walk-in, a same-day call), the visit follows."""
        yield from office.make_booking(self.room, booking)
        visit = booking.visit()
        if visit is None or visit.start.date() != day:
            return
        yield until(self.clock.now, visit.start - timedelta(minutes=15))
        yield from self.visits.activity(visit)

    def _follow_up(self, card: PatientCard, visit: BookedVisit) -> None:
        """Booked at checkout for a day the same physician works there, weeks ahead."""
        physician = self.world.by_practitioner.get(visit.practitioner_id)
        if physician is None:
            return
        day = visit.start.date() + timedelta(days=self.rng.randint(14, 90))
        for _ in range(14):
            if is_working_day(day) and works_at(physician, day) == visit.clinic_id:
                break
            day += timedelta(days=1)
        start = visit_start(self.rng, day, day_kind(day))
        booking = Booking(
            card, visit.clinic_id, visit.location_id, visit.speciality, visit.practitioner_id,
            start, start + (visit.end - visit.start), self.clock.now, online=False,
        )  # fmt: skip
        self.planner.book.by_visit_day.setdefault(day, []).append(booking)
        self.timeline.start(self.clock.now, office.make_booking(self.room, booking))

    # --- what a run reports --------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        entries = sum(f.ledger_entries for f in self.figures)
        return {
            "start": self.start.isoformat(),
            "days": self.days,
            "seed": self.seed,
            "patients": len(self.world.patients),
            "clinics": len(self.world.group.clinics),
            "wall_seconds": round(time.perf_counter() - self.wall_started, 1),
            "ledger_entries": entries,
            "ledger_entries_per_day": round(entries / max(len(self.figures), 1), 1),
            "lookalikes": self.lookalikes.describe(),
            "days_run": [f.__dict__ for f in self.figures],
            "ended_us": to_micros(self.clock.now),
        }
