"""What the simulator knows about the seeded clinic group: its people, in memory only.

The world is rebuilt from the seed on every run (``generate_patients`` is deterministic),
never read back through the gate and never written to disk: it holds names, HKID
numbers and addresses, which must not lie around in the clear. Each patient becomes a
light ``PatientCard`` with what the workload needs (how to find them at the front desk,
where and how often they are seen); booked appointments in the run's window become the
first visits of each day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from carevault.sim.codes import SPECIALITIES
from carevault.sim.facts import StaffMember
from carevault.sim.group import ClinicGroup, build_group
from carevault.sim.patients import PatientRecord, generate_patients

_SPECIALITY_BY_CODE = {concept.code: key for key, concept in SPECIALITIES.items()}
_FLAT = re.compile(r"^Flat [^,]+, \d+/F,?\s*")
#: History that counts towards a patient's usual rate of visits.
RATE_WINDOW = timedelta(days=365)


@dataclass(frozen=True)
class PatientCard:
    """One patient as the workload sees them (built from the seeded record, kept in memory)."""

    patient_id: str
    home_clinic_id: str
    family: str
    official_name: str
    hkid: str
    phone: str
    #: The home's building (estate block or street number), without flat and floor.
    building: str
    birth_date: date
    visits_last_year: int
    #: (clinic id, speciality, practitioner id, day) of each past visit, most recent last.
    seen_by: tuple[tuple[str, str, str, date], ...]
    insured: bool

    def age_on(self, day: date) -> int:
        years = day.year - self.birth_date.year
        return years - ((day.month, day.day) < (self.birth_date.month, self.birth_date.day))


@dataclass(frozen=True)
class BookedVisit:
    """An appointment already in the database (seeded or booked during the run)."""

    appointment_id: str
    patient_id: str
    start: datetime
    end: datetime
    practitioner_id: str
    location_id: str
    clinic_id: str
    speciality: str
    slot_id: str | None = None


@dataclass
class World:
    group: ClinicGroup
    patients: list[PatientCard]
    booked: list[BookedVisit]
    by_id: dict[str, PatientCard] = field(init=False)
    _by_hkid: dict[str, PatientCard] = field(init=False)
    _schedules: dict[tuple[str, str], str] = field(init=False)
    by_practitioner: dict[str, StaffMember] = field(init=False)
    clinic_of_location: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.by_id = {card.patient_id: card for card in self.patients}
        self._by_hkid = {card.hkid: card for card in self.patients}
        self.by_practitioner = {
            m.practitioner_id: m for m in self.group.staff if m.practitioner_id is not None
        }
        self.clinic_of_location = {c.location_id: c.id for c in self.group.clinics}
        self._schedules: dict[tuple[str, str], str] = {}
        for schedule in self.group.schedules:
            actors = [str(a["reference"]).split("/", 1) for a in schedule["actor"]]
            who = next(ident for kind, ident in actors if kind == "Practitioner")
            where = next(ident for kind, ident in actors if kind == "Location")
            self._schedules[(who, where)] = str(schedule["id"])

    def schedule_of(self, practitioner_id: str, location_id: str) -> str | None:
        """The physician's Schedule at a clinic's location, if they have one there."""
        return self._schedules.get((practitioner_id, location_id))

    def add_patient(self, card: PatientCard) -> None:
        self.patients.append(card)
        self.by_id[card.patient_id] = card
        self._by_hkid[card.hkid] = card

    def by_hkid(self, hkid: str) -> PatientCard | None:
        return self._by_hkid.get(hkid)


def _building(address: dict[str, Any]) -> str:
    lines = [str(line) for line in address.get("line") or []]
    first = _FLAT.sub("", lines[0]) if lines else ""
    return " | ".join(part for part in (first, *lines[1:], str(address.get("district"))) if part)


def _reference_id(node: object, kind: str) -> str | None:
    if isinstance(node, dict):
        reference = str(node.get("reference", ""))
        if reference.startswith(f"{kind}/"):
            return reference.split("/", 1)[1]
    return None


def card_of(record: PatientRecord, today: date) -> PatientCard:
    patient = record.patient
    name = patient["name"][0]
    since = today - RATE_WINDOW
    seen: list[tuple[datetime, str, str, str]] = []
    for resource in record.resources:
        if resource["resourceType"] != "Encounter":
            continue
        start = datetime.fromisoformat(resource["period"]["start"])
        clinic = _reference_id(resource.get("serviceProvider"), "Organization")
        coding = resource.get("serviceType", {}).get("coding", [{}])[0]
        speciality = _SPECIALITY_BY_CODE.get(str(coding.get("code")))
        practitioner = _reference_id(resource["participant"][0].get("individual"), "Practitioner")
        if clinic and speciality and practitioner:
            seen.append((start, clinic, speciality, practitioner))
    seen.sort()
    return PatientCard(
        patient_id=patient["id"],
        home_clinic_id=record.home_clinic_id,
        family=str(name.get("family") or name.get("text", "")).split()[0],
        official_name=record.names[0],
        hkid=record.hkid,
        phone=record.phone,
        building=_building(patient["address"][0]),
        birth_date=date.fromisoformat(record.birth_date),
        visits_last_year=sum(1 for moment, *_ in seen if moment.date() >= since),
        seen_by=tuple(
            (clinic, speciality, who, moment.date()) for moment, clinic, speciality, who in seen
        ),
        insured=any(r["resourceType"] == "Coverage" for r in record.resources),
    )


def booked_visits(record: PatientRecord, clinic_of_location: dict[str, str]) -> list[BookedVisit]:
    visits = []
    for resource in record.resources:
        if resource["resourceType"] != "Appointment" or resource["status"] != "booked":
            continue
        actors = [p["actor"] for p in resource["participant"]]
        practitioner = next(filter(None, (_reference_id(a, "Practitioner") for a in actors)))
        location = next(filter(None, (_reference_id(a, "Location") for a in actors)))
        code = resource["serviceType"][0]["coding"][0]["code"]
        slot = _reference_id((resource.get("slot") or [None])[0], "Slot")
        visits.append(
            BookedVisit(
                appointment_id=resource["id"],
                patient_id=record.patient["id"],
                start=datetime.fromisoformat(resource["start"]),
                end=datetime.fromisoformat(resource["end"]),
                practitioner_id=practitioner,
                location_id=location,
                clinic_id=clinic_of_location[location],
                speciality=_SPECIALITY_BY_CODE[code],
                slot_id=slot,
            )
        )
    return visits


def build_world(seed: int, patients: int, today: date) -> World:
    """The world of a home seeded with ``seed``, ``patients`` and ``today``."""
    group = build_group(seed, today)
    locations = {c.location_id: c.id for c in group.clinics}
    cards: list[PatientCard] = []
    booked: list[BookedVisit] = []
    for record in generate_patients(group, patients, seed, today):
        cards.append(card_of(record, today))
        booked.extend(booked_visits(record, locations))
    booked.sort(key=lambda visit: visit.start)
    return World(group, cards, booked)
