"""A visit, from arrival to pharmacy: what each member of staff opens and writes.

The front desk finds the arriving patient (by HKID, phone or name) and marks the
appointment arrived; a nurse takes vital signs; the physician opens the chart (the
patient, their conditions, recent observations, medicines, allergies), writes the
encounter and what they found, and often a prescription; the pharmacist looks the
prescription up; at checkout the front desk books a follow-up. Patients sent for
blood tests get results the next morning from the laboratory interface.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from carevault.sim.elements import quantity
from carevault.sim.workload import forms
from carevault.sim.workload.desk import Desk, Reply
from carevault.sim.workload.staffroom import Staffroom
from carevault.sim.workload.timeline import Activity
from carevault.sim.workload.world import BookedVisit, PatientCard


def until(now: datetime, moment: datetime) -> float:
    return max((moment - now).total_seconds(), 1.0)


def lookup(rng: random.Random, desk: Desk, card: PatientCard) -> Reply:
    """How the front desk finds a patient: the HKID card, the phone number, or the name."""
    draw = rng.random()
    if draw < 0.45:
        return desk.search("Patient", [("identifier", card.hkid)])
    if draw < 0.7:
        return desk.search("Patient", [("phone", card.phone)])
    return desk.search("Patient", [("name", card.official_name), ("_count", "10")])


def set_status(desk: Desk, appointment_id: str, status: str) -> Reply:
    current = desk.read("Appointment", appointment_id)
    if not current.ok:
        return current
    body = current.document()
    body["status"] = status
    body.pop("meta", None)
    return desk.update(body)


def created_id(reply: Reply) -> str | None:
    return str(reply.document().get("id")) if reply.ok and reply.body else None


@dataclass
class Visits:
    """Runs visits; ``follow_up`` books a later appointment at checkout."""

    room: Staffroom
    follow_up: Callable[[PatientCard, BookedVisit], None]
    lab_orders: list[tuple[PatientCard, str]]
    #: Insured patients seen, for the month-end billing run: (card, clinic, speciality, day).
    seen: list[tuple[PatientCard, BookedVisit]]
    #: Consultations held (the run reports them per day).
    consultations: int = 0

    def activity(self, visit: BookedVisit) -> Activity:
        room, rng = self.room, self.room.rng
        card = room.world.by_id.get(visit.patient_id)
        if card is None:
            return
        physician = room.world.by_practitioner.get(visit.practitioner_id)
        # Arrival, a few minutes early.
        front = room.pick(visit.clinic_id, "front_desk")
        if front is not None and (desk := room.desk(front)) is not None:
            lookup(rng, desk, card)
            yield rng.uniform(20, 60)
            set_status(desk, visit.appointment_id, "arrived")
        yield until(room.services.clock(), visit.start - timedelta(minutes=4))
        nurse = room.pick(visit.clinic_id, "nurse")
        if nurse is not None and rng.random() < 0.6 and (desk := room.desk(nurse)) is not None:
            desk.read("Patient", card.patient_id)
            vitals = forms.vital_signs(
                rng,
                card.patient_id,
                room.services.clock(),
                str(nurse.practitioner_id),
                card.age_on(room.day),
            )
            desk.create(vitals)
        yield until(room.services.clock(), visit.start)
        if physician is None or (desk := room.desk(physician)) is None:
            return
        yield from self._consult(desk, card, visit)

    def _consult(self, desk: Desk, card: PatientCard, visit: BookedVisit) -> Activity:
        room, rng = self.room, self.room.rng
        patient = card.patient_id
        self.consultations += 1
        desk.read("Patient", patient)
        yield rng.uniform(10, 40)
        desk.search("Condition", [("patient", patient)])
        desk.search("Observation", [("patient", patient), ("_count", "20")])
        desk.search("MedicationRequest", [("patient", patient), ("status", "active")])
        if rng.random() < 0.4:
            desk.search("AllergyIntolerance", [("patient", patient)])
        yield until(room.services.clock(), visit.end - timedelta(minutes=2))
        kind = "follow_up" if card.visits_last_year >= 3 else "symptom"
        encounter = created_id(desk.create(forms.encounter(visit, kind, visit.practitioner_id)))
        now = room.services.clock()
        if encounter is not None and rng.random() < 0.3:
            weight = {"valueQuantity": quantity(round(rng.gauss(62, 12), 1), "kg")}
            performer = {"reference": f"Practitioner/{visit.practitioner_id}"}
            desk.create(
                forms.observation(
                    patient, encounter, "weight", "vital-signs", weight, now, performer
                )  # fmt: skip
            )
        medicine = forms.prescription_for(rng, visit.speciality)
        prescribed = False
        if encounter is not None and medicine is not None and rng.random() < 0.55:
            reply = desk.create(
                forms.prescription(medicine, patient, encounter, now, visit.practitioner_id)
            )
            prescribed = reply.ok
        set_status(desk, visit.appointment_id, "fulfilled")
        if card.visits_last_year >= 3 and rng.random() < 0.3:
            self.lab_orders.append((card, visit.clinic_id))
        if card.insured:
            self.seen.append((card, visit))
        yield rng.uniform(120, 900)
        if prescribed:
            pharmacist = room.pick(visit.clinic_id, "pharmacist")
            if pharmacist is not None and (counter := room.desk(pharmacist)) is not None:
                counter.search("MedicationRequest", [("patient", patient), ("status", "active")])
                counter.read("Patient", patient)
        if rng.random() < 0.3:
            self.follow_up(card, visit)


def lab_results(room: Staffroom, orders: list[tuple[PatientCard, str]]) -> Activity:
    """The laboratory interface posts yesterday's results early in the morning."""
    lab = room.world.group.member("svc.lab-results")
    desk = room.desk(lab)
    if desk is None:
        return
    for card, clinic_id in orders:
        found = desk.search("Patient", [("identifier", card.hkid)])
        if found.ok and found.resources():
            for resource in forms.lab_results(
                room.rng, card.patient_id, room.services.clock(), clinic_id
            ):
                desk.create(resource)
        yield room.rng.uniform(20, 90)
