"""Harmless work that looks like snooping or bulk reading, scheduled once from the seed.

* Households: families registered on the first day (one surname, one address) and
  later seen one after another by the same physician.
* Co-workers: staff registered as patients at their own clinic.
* A news day: a public figure (a VIP patient) is treated at their clinic; a care team
  forms and its members open the record.
* Covering: each week a physician is on leave and a colleague from another clinic,
  on their own day off, sees that physician's patients.
* Chart reviews: twice a week a physician reviews the charts of patients they saw in
  the last weeks.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, time, timedelta
from typing import TYPE_CHECKING, Any

from carevault.sim.elements import at
from carevault.sim.facts import StaffMember
from carevault.sim.names import person_name
from carevault.sim.patients import Identities
from carevault.sim.places import CLINIC_SITES, address
from carevault.sim.workload import forms, office
from carevault.sim.workload.calendar import is_working_day
from carevault.sim.workload.roster import works_at
from carevault.sim.workload.world import BookedVisit, PatientCard

if TYPE_CHECKING:
    from carevault.sim.workload.run import Simulation

#: Registered identities take indexes past the seeded patients, so none collides.
_IDENTITY_BASE = 2_000_000
REVIEW_WINDOW_DAYS = 80
REVIEW_CHARTS = 40


@dataclass
class Household:
    key: str
    clinic_id: str
    resources: list[dict[str, Any]]
    cards: list[PatientCard]
    visit_day: date


@dataclass
class Lookalikes:
    households: list[Household] = field(default_factory=list)
    #: (staff username, the registration resource, their card).
    coworkers: list[tuple[str, dict[str, Any], PatientCard]] = field(default_factory=list)
    vip: PatientCard | None = None
    news: tuple[date, str] | None = None
    #: day → (physician on leave, colleague covering)
    covering: dict[date, tuple[StaffMember, StaffMember]] = field(default_factory=dict)
    reviews: dict[date, StaffMember] = field(default_factory=dict)

    def on_leave(self, day: date) -> frozenset[str]:
        found = self.covering.get(day)
        return frozenset({found[0].username}) if found else frozenset()

    def schedule(self, run: Simulation, day: date, visits: list[BookedVisit]) -> list[BookedVisit]:
        room, timeline = run.room, run.timeline
        morning = at(day, time(8, 40))
        if day == run.start:
            by_clinic: dict[str, tuple[list[dict[str, Any]], list[PatientCard]]] = {}
            for household in self.households:
                entry = by_clinic.setdefault(household.clinic_id, ([], []))
                entry[0].extend(household.resources)
                entry[1].extend(household.cards)
            for _, resource, card in self.coworkers:
                entry = by_clinic.setdefault(card.home_clinic_id, ([], []))
                entry[0].append(resource)
                entry[1].append(card)
            for clinic_id, (resources, cards) in by_clinic.items():
                timeline.start(morning, office.register(room, clinic_id, resources, cards))
        for household in self.households:
            if household.visit_day == day:
                members = [c for c in run.world.patients if c.hkid in _hkids(household)]
                for booking in run.planner.plan_household(members, household.key, day, room.duty):
                    booking.book_at = min(morning, booking.start - timedelta(minutes=30))
                    timeline.start(booking.book_at, office.make_booking(room, booking))
        if self.news is not None and self.news[0] == day and self.vip is not None:
            clinic_id = self.news[1]
            team = room.duty.of(clinic_id, "physician")[:3] + room.duty.of(clinic_id, "nurse")[:4]
            if team:
                start = at(day, time(10, 30))
                timeline.start(start, office.news_event(room, self.vip, clinic_id, team, start))
        if day in self.covering:
            away, cover = self.covering[day]
            moved = [v for v in visits if v.practitioner_id == away.practitioner_id]
            if moved:
                timeline.start(at(day, time(8, 0)), office.covered_visits(room, moved, cover))
                visits = [
                    replace(v, practitioner_id=str(cover.practitioner_id))
                    if v.practitioner_id == away.practitioner_id
                    else v
                    for v in visits
                ]
        if day in self.reviews:
            physician = self.reviews[day]
            cards = _review_cards(run, physician, day)
            if cards:
                timeline.start(at(day, time(14, 0)), office.chart_review(room, physician, cards))
        return visits

    def describe(self) -> dict[str, Any]:
        return {
            "households": [
                {"household": h.key, "members": len(h.cards), "seen_together": str(h.visit_day)}
                for h in self.households
            ],
            "coworkers": [username for username, _, _ in self.coworkers],
            "vip_patient": self.vip.patient_id if self.vip else None,
            "news_day": str(self.news[0]) if self.news else None,
            "covering": {
                str(day): {"on_leave": a.username, "covering": b.username}
                for day, (a, b) in self.covering.items()
            },
            "chart_reviews": {str(day): m.username for day, m in self.reviews.items()},
        }


def _hkids(household: Household) -> set[str]:
    return {card.hkid for card in household.cards}


def _review_cards(run: Simulation, physician: StaffMember, day: date) -> list[PatientCard]:
    since = day - timedelta(days=REVIEW_WINDOW_DAYS)
    mine = [
        card
        for card in run.world.patients
        if any(who == physician.practitioner_id and seen >= since for *_, who, seen in card.seen_by)
    ]
    return mine[:REVIEW_CHARTS]


def _new_person(
    rng: random.Random, identities: Identities, index: int, family_of: Any | None = None
) -> tuple[str, str, bool, date, str, str]:
    female = rng.random() < 0.5
    born = date(rng.randint(1950, 2020), rng.randint(1, 12), rng.randint(1, 28))
    name = person_name(rng, female, born.year, "chinese")
    family = family_of or name.family or "Chan"
    given = " ".join(name.given) or "Tai Man"
    return family, given, female, born, identities.hkids.number(index), identities.phone(index)


def _card(resource: dict[str, Any], clinic_id: str, building: str) -> PatientCard:
    name = resource["name"][0]
    return PatientCard(
        patient_id="",
        home_clinic_id=clinic_id,
        family=name["family"],
        official_name=f"{name['family']} {name['given'][0]}",
        hkid=resource["identifier"][0]["value"],
        phone=resource["telecom"][0]["value"],
        building=building,
        birth_date=date.fromisoformat(resource["birthDate"]),
        visits_last_year=0,
        seen_by=(),
        insured=False,
    )


def _households(run: Simulation, rng: random.Random, identities: Identities) -> list[Household]:
    made = []
    count = max(2, len(run.world.patients) // 1000)
    working = [d for d in _days(run) if is_working_day(d) and d > run.start + timedelta(days=1)]
    for number in range(count):
        clinic = rng.choice(run.world.group.clinics)
        site = next(s for s in CLINIC_SITES if s.key == clinic.key)
        home = address(rng, rng.choice(site.catchment))
        family: str | None = None
        resources, cards = [], []
        for member in range(rng.randint(2, 4)):
            index = _IDENTITY_BASE + number * 10 + member
            surname, given, female, born, hkid, phone = _new_person(rng, identities, index, family)
            family = surname
            resource = forms.registration(surname, given, female, born, hkid, phone, home,
                                          clinic.id)  # fmt: skip
            resources.append(resource)
            cards.append(_card(resource, clinic.id, str(home["line"])))
        visit_day = rng.choice(working) if working else run.start
        made.append(Household(f"household-{number + 1}", clinic.id, resources, cards, visit_day))
    return made


def _days(run: Simulation) -> list[date]:
    return [run.start + timedelta(days=n) for n in range(run.days)]


def plan_lookalikes(run: Simulation) -> Lookalikes:
    rng = random.Random(f"carevault-lookalikes:{run.seed}")
    identities = Identities(run.seed)
    found = Lookalikes(households=_households(run, rng, identities))
    staff = [m for m in run.world.group.staff if m.role not in ("integration",)]
    for number, member in enumerate(rng.sample(staff, max(3, len(staff) // 40))):
        surname, given = member.display_name.replace("Dr ", "").split(" ", 1)
        female, born = rng.random() < 0.5, date(rng.randint(1962, 1998), 3, 14)
        index = _IDENTITY_BASE + 200_000 + number
        clinic_id = member.clinic_ids[0]
        site = next(s for s in CLINIC_SITES for c in run.world.group.clinics
                    if c.id == clinic_id and s.key == c.key)  # fmt: skip
        home = address(rng, rng.choice(site.catchment))
        resource = forms.registration(surname, given, female, born, identities.hkids.number(index),
                                      identities.phone(index), home, clinic_id)  # fmt: skip
        found.coworkers.append((member.username, resource, _card(resource, clinic_id, "")))
    if run.world.patients:
        # The public figure lives in one of the fuller buildings: they have neighbours
        # among the patients, whom an insider may look up too.
        buildings = Counter(card.building for card in run.world.patients)
        fullest = max(buildings.values())
        found.vip = rng.choice([c for c in run.world.patients if buildings[c.building] == fullest])
        working = [d for d in _days(run) if is_working_day(d)]
        if working:
            found.news = (working[len(working) // 2], found.vip.home_clinic_id)
    physicians = [m for m in run.world.group.staff if m.role == "physician"]
    for day in _days(run):
        if day.weekday() == 2 and physicians:
            away = rng.choice(physicians)
            clinic = works_at(away, day)
            covers = [
                m
                for m in physicians
                if m.speciality == away.speciality and m is not away and works_at(m, day) is None
            ]
            if clinic is not None and covers:
                found.covering[day] = (away, rng.choice(covers))
        if day.weekday() in (1, 3) and physicians:
            found.reviews[day] = rng.choice(physicians)
    return found
