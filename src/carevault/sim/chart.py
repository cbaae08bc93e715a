"""One patient's chart under construction: visits and the clinical resources they produce.

Resources are kept in buckets by type and handed out in ``RESOURCE_ORDER``, which puts
every resource after those it references (appointments before the encounters that
fulfil them, encounters before their conditions, observations before their reports,
claims before their explanations of benefit).
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from carevault.sim.codes import (
    ALLERGIES,
    CONDITIONS,
    ENCOUNTER_TYPES,
    MEDICATIONS,
    OBSERVATIONS,
    PANELS,
    PROCEDURES,
    SPECIALITIES,
    SPECIALITY_LABELS,
    V3_ACT,
    VACCINES,
    Concept,
)
from carevault.sim.elements import at, instant, new_id, quantity
from carevault.sim.facts import Clinic, StaffMember
from carevault.sim.group import ClinicGroup

RESOURCE_ORDER = (
    "Coverage", "Appointment", "Encounter", "Condition", "AllergyIntolerance", "Observation",
    "DiagnosticReport", "Procedure", "Immunization", "MedicationRequest", "Goal", "CarePlan",
    "ImagingStudy", "DocumentReference", "Claim", "ExplanationOfBenefit",
)  # fmt: skip

_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
_CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
_OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
_CATEGORY_DISPLAY = {
    "vital-signs": "Vital Signs", "laboratory": "Laboratory", "survey": "Survey", "exam": "Exam",
}  # fmt: skip
_SESSION_STARTS = tuple(
    time(hour, minute) for hour in (9, 10, 11, 12, 14, 15, 16, 17) for minute in (0, 15, 30, 45)
    if not (hour == 14 and minute < 30)
)  # fmt: skip
_SATURDAY_STARTS = tuple(t for t in _SESSION_STARTS if t.hour < 13)
#: Minutes a visit of each speciality takes.
VISIT_MINUTES = {
    "general_practice": 10, "paediatrics": 15, "womens_health": 20, "mental_health": 45,
    "physiotherapy": 30, "dental": 30, "dermatology": 15, "ophthalmology": 20,
}  # fmt: skip


@dataclass
class Visit:
    """A finished encounter and what it is billed for."""

    id: str
    speciality: str
    clinic: Clinic
    physician: StaffMember
    start: datetime
    end: datetime
    encounter: dict[str, Any]
    fees: list[str] = field(default_factory=list)
    diagnoses: list[str] = field(default_factory=list)

    @property
    def reference(self) -> dict[str, str]:
        return {"reference": f"Encounter/{self.id}"}

    @property
    def performer(self) -> dict[str, str]:
        return {"reference": f"Practitioner/{self.physician.practitioner_id}"}


@dataclass
class Person:
    """The facts about a patient that their history depends on."""

    patient_id: str
    female: bool
    birth_date: date
    origin: str
    home: Clinic
    #: First day the group may have seen the patient: birth, registration or 5 years ago.
    first_day: date
    insured: bool

    def age_on(self, day: date) -> int:
        years = day.year - self.birth_date.year
        return years - ((day.month, day.day) < (self.birth_date.month, self.birth_date.day))


class Chart:
    """Builds one patient's resources; every method returns the new resource's id.

    Every resource gets elements of its own (no dict or list is shared between two
    resources), so a consumer may change one resource in place without touching another.
    """

    def __init__(self, rng: random.Random, group: ClinicGroup, person: Person, today: date) -> None:
        self.rng = rng
        self.group = group
        self.person = person
        self.today = today
        self._patient_reference = f"Patient/{person.patient_id}"
        self.buckets: dict[str, list[dict[str, Any]]] = {name: [] for name in RESOURCE_ORDER}
        self.visits: list[Visit] = []
        #: Follow-ups the history leaves due on or after today: (day, speciality).
        self.due: list[tuple[date, str]] = []
        self._doctors: dict[tuple[str, str], StaffMember] = {}

    @property
    def subject(self) -> dict[str, str]:
        """A reference to the patient: a new dict each time, so no two resources share one."""
        return {"reference": self._patient_reference}

    def resources(self) -> list[dict[str, Any]]:
        # Programmes write visits topic by topic; readers expect a timeline.
        self.buckets["Appointment"].sort(key=lambda r: str(r["start"]))
        self.buckets["Encounter"].sort(key=lambda r: str(r["period"]["start"]))
        return [r for name in RESOURCE_ORDER for r in self.buckets[name]]

    def add(self, resource_type: str, body: dict[str, Any]) -> str:
        resource_id = new_id(self.rng)
        self.buckets[resource_type].append(
            {"resourceType": resource_type, "id": resource_id, **body}
        )
        return resource_id

    # --- visits -----------------------------------------------------------------

    def clinic_for(self, speciality: str) -> Clinic:
        return self.group.clinic_for(self.person.home.id, speciality)

    def physician(self, clinic: Clinic, speciality: str) -> StaffMember:
        """The patient's usual physician of that speciality there, or now and then another."""
        key = (clinic.id, speciality)
        candidates = self.group.physicians(clinic.id, speciality)
        usual = self._doctors.get(key)
        if usual is None:
            usual = self._doctors[key] = self.rng.choice(candidates)
        return usual if self.rng.random() < 0.8 else self.rng.choice(candidates)

    def usual_physician(self, clinic_id: str, speciality: str) -> StaffMember | None:
        return self._doctors.get((clinic_id, speciality))

    def opening_day(self, day: date) -> date:
        """``day`` moved into the patient's window and off Sundays (only a GP rota opens)."""
        day = min(max(day, self.person.first_day), self.today - timedelta(days=1))
        if day.weekday() == 6:
            day += timedelta(days=-1 if day - timedelta(days=1) >= self.person.first_day else 1)
        return day

    def appointment_time(self, day: date) -> datetime:
        """A start time on an upcoming ``day`` (Sundays move to Monday: no rota is known)."""
        if day.weekday() == 6:
            day += timedelta(days=1)
        starts = _SATURDAY_STARTS if day.weekday() == 5 else _SESSION_STARTS
        return at(day, self.rng.choice(starts))

    def visit(
        self,
        speciality: str,
        day: date,
        kind: str,
        reasons: tuple[Concept, ...] = (),
        charge: bool = True,
    ) -> Visit:
        """A finished ambulatory encounter at the clinic that offers ``speciality``."""
        day = self.opening_day(day)
        if speciality == "paediatrics" and self.person.age_on(day) >= 18:
            # Paediatricians see children only; moving the day may cross an 18th birthday.
            speciality = "general_practice"
        clinic = self.clinic_for(speciality)
        physician = self.physician(clinic, speciality)
        starts = _SATURDAY_STARTS if day.weekday() == 5 else _SESSION_STARTS
        start = at(day, self.rng.choice(starts))
        end = start + timedelta(minutes=VISIT_MINUTES[speciality])
        label = SPECIALITY_LABELS[speciality][0]
        body: dict[str, Any] = {
            "status": "finished",
            "class": {"system": V3_ACT, "code": "AMB", "display": "ambulatory"},
            "type": [ENCOUNTER_TYPES[kind].concept()],
            "serviceType": SPECIALITIES[speciality].concept(label),
            "subject": self.subject,
            "participant": [{
                "type": [{"coding": [{"system": _PARTICIPATION, "code": "PPRF",
                                      "display": "primary performer"}]}],
                "individual": {"reference": f"Practitioner/{physician.practitioner_id}",
                               "display": physician.display_name},
            }],
            "period": {"start": instant(start), "end": instant(end)},
            "location": [{"location": {"reference": f"Location/{clinic.location_id}"},
                          "status": "completed"}],
            "serviceProvider": {"reference": f"Organization/{clinic.id}"},
        }  # fmt: skip
        if reasons:
            body["reasonCode"] = [reason.concept() for reason in reasons]
        encounter_id = self.add("Encounter", body)
        encounter = self.buckets["Encounter"][-1]
        visit = Visit(encounter_id, speciality, clinic, physician, start, end, encounter)
        if charge:  # a nurse-only vaccination visit is billed for the vaccine alone
            visit.fees.append(speciality)
        self.visits.append(visit)
        return visit

    # --- clinical statements ----------------------------------------------------

    def condition(
        self,
        visit: Visit,
        key: str,
        onset: date | None = None,
        resolved: date | None = None,
        chronic: bool = False,
    ) -> str:
        category = "problem-list-item" if chronic else "encounter-diagnosis"
        display = "Problem List Item" if chronic else "Encounter Diagnosis"
        body: dict[str, Any] = {
            "clinicalStatus": {"coding": [{"system": _CLINICAL,
                                           "code": "resolved" if resolved else "active"}]},
            "verificationStatus": {"coding": [{"system": _VERIFICATION, "code": "confirmed"}]},
            "category": [{"coding": [{"system": _CONDITION_CATEGORY, "code": category,
                                      "display": display}]}],
            "code": CONDITIONS[key].concept(),
            "subject": self.subject,
            "encounter": visit.reference,
            "onsetDateTime": (onset or visit.start.date()).isoformat(),
        }  # fmt: skip
        if resolved is not None:
            body["abatementDateTime"] = resolved.isoformat()
        body["recordedDate"] = instant(visit.start)
        body["recorder"] = visit.performer
        condition_id = self.add("Condition", body)
        visit.diagnoses.append(condition_id)
        return condition_id

    def observation(
        self,
        visit: Visit,
        key: str,
        category: str,
        value: dict[str, Any],
        code: Concept | None = None,
    ) -> str:
        """An observation; ``value`` holds one ``value[x]`` or a ``component`` list."""
        concept = (code or OBSERVATIONS[key]).concept()
        body: dict[str, Any] = {
            "status": "final",
            "category": [{"coding": [{"system": _OBSERVATION_CATEGORY, "code": category,
                                      "display": _CATEGORY_DISPLAY[category]}]}],
            "code": concept,
            "subject": self.subject,
            "encounter": visit.reference,
            "effectiveDateTime": instant(visit.start),
            "issued": instant(visit.end),
            "performer": [visit.performer],
            **value,
        }  # fmt: skip
        return self.add("Observation", body)

    def measurement(self, visit: Visit, key: str, category: str, value: float, unit: str,
                    ucum: str | None = None) -> str:  # fmt: skip
        return self.observation(
            visit, key, category, {"valueQuantity": quantity(value, unit, ucum)}
        )

    def blood_pressure(self, visit: Visit, systolic: int, diastolic: int) -> str:
        components = [
            {"code": OBSERVATIONS["systolic"].concept(),
             "valueQuantity": quantity(systolic, "mm[Hg]")},
            {"code": OBSERVATIONS["diastolic"].concept(),
             "valueQuantity": quantity(diastolic, "mm[Hg]")},
        ]  # fmt: skip
        return self.observation(visit, "bp_panel", "vital-signs", {"component": components})

    def questionnaire_score(self, visit: Visit, key: str, score: int) -> str:
        """A total score (e.g. PHQ-9 44261-6) and its panel (44249-1) that has it as member."""
        item = self.observation(visit, key, "survey", {"valueInteger": score})
        member = {"hasMember": [{"reference": f"Observation/{item}"}]}
        return self.observation(visit, key, "survey", member, code=PANELS[key])

    def note(self, visit: Visit, kind: Concept, text: str) -> str:
        """A clinical note as a plain-text attachment."""
        data = base64.b64encode(text.encode("utf-8")).decode("ascii")
        label = SPECIALITY_LABELS[visit.speciality][0]
        body = {
            "status": "current",
            "docStatus": "final",
            "type": kind.concept(),
            "subject": self.subject,
            "date": instant(visit.end),
            "author": [visit.performer],
            "description": f"{kind.display}, {label}",
            "content": [{"attachment": {
                "contentType": "text/plain; charset=utf-8", "language": "en", "data": data,
                "title": kind.display, "creation": instant(visit.end),
            }}],
            "context": {
                "encounter": [visit.reference],
                "period": {"start": instant(visit.start), "end": instant(visit.end)},
                "practiceSetting": SPECIALITIES[visit.speciality].concept(label),
            },
        }  # fmt: skip
        return self.add("DocumentReference", body)

    # --- orders and acts ----------------------------------------------------------

    def procedure(self, visit: Visit, key: str, reasons: tuple[str, ...] = ()) -> str:
        body: dict[str, Any] = {
            "status": "completed",
            "code": PROCEDURES[key].concept(),
            "subject": self.subject,
            "encounter": visit.reference,
            "performedPeriod": {"start": instant(visit.start), "end": instant(visit.end)},
            "performer": [{"actor": visit.performer}],
            "location": {"reference": f"Location/{visit.clinic.location_id}"},
        }
        if reasons:
            body["reasonReference"] = [{"reference": f"Condition/{r}"} for r in reasons]
        return self.add("Procedure", body)

    def medication(
        self, visit: Visit, key: str, reason: str | None = None, active: bool = False
    ) -> str:
        drug = MEDICATIONS[key]
        body: dict[str, Any] = {
            "status": "active" if active else "completed",
            "intent": "order",
            "medicationCodeableConcept": drug.concept.concept(drug.product),
            "subject": self.subject,
            "encounter": visit.reference,
            "authoredOn": instant(visit.end),
            "requester": visit.performer,
        }
        if reason is not None:
            body["reasonReference"] = [{"reference": f"Condition/{reason}"}]
        body["dosageInstruction"] = [{"text": drug.dosage}]
        body["dispenseRequest"] = {"quantity": {"value": drug.quantity, "unit": drug.unit}}
        return self.add("MedicationRequest", body)

    def immunization(
        self, visit: Visit, vaccine: str, dose: int, series: str, nurse: StaffMember
    ) -> str:
        body = {
            "status": "completed",
            "vaccineCode": VACCINES[vaccine].concept(),
            "patient": self.subject,
            "encounter": visit.reference,
            "occurrenceDateTime": instant(visit.start),
            "primarySource": True,
            "lotNumber": f"{self.rng.choice('ABHKMRS')}{self.rng.randrange(10_000, 99_999)}",
            "route": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration",
                "code": "IM", "display": "Injection, intramuscular",
            }]} if vaccine != "bcg" else {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration",
                "code": "IDINJ", "display": "Injection, intradermal",
            }]},
            "performer": [{
                "function": {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/v2-0443",
                    "code": "AP", "display": "Administering Provider",
                }]},
                "actor": {"reference": f"Practitioner/{nurse.practitioner_id}"},
            }],
            "protocolApplied": [{"series": series, "doseNumberPositiveInt": dose}],
        }  # fmt: skip
        visit.fees.append("vaccine")
        return self.add("Immunization", body)

    def allergy(self, visit: Visit, key: str) -> str:
        finding, kind, criticality, reaction = ALLERGIES[key]
        body = {
            "clinicalStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                "code": "active"}]},
            "verificationStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                "code": "confirmed"}]},
            "type": "allergy",
            "category": [kind],
            "criticality": criticality,
            "code": finding.concept(),
            "patient": self.subject,
            "encounter": visit.reference,
            "recordedDate": instant(visit.start),
            "recorder": visit.performer,
            "reaction": [{"manifestation": [reaction.concept()], "severity": "moderate"}],
        }  # fmt: skip
        return self.add("AllergyIntolerance", body)

    def lab_report(self, visit: Visit, code: Concept, results: list[str], conclusion: str) -> str:
        """A laboratory DiagnosticReport grouping ``results``, issued the next day."""
        issued = min(visit.end + timedelta(days=1), at(self.today, time(0, 0)))
        body: dict[str, Any] = {
            "status": "final",
            "category": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                "code": "LAB", "display": "Laboratory"}]}],
            "code": code.concept(),
            "subject": self.subject,
            "encounter": visit.reference,
            "effectiveDateTime": instant(visit.start),
            "issued": instant(max(issued, visit.end)),
            "performer": [{"reference": f"Organization/{visit.clinic.id}"}],
        }  # fmt: skip
        if results:
            body["result"] = [{"reference": f"Observation/{r}"} for r in results]
        body["conclusion"] = conclusion
        visit.fees.append("lab")
        return self.add("DiagnosticReport", body)
