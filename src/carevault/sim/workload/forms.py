"""The FHIR resources staff write during the day: the forms of the clinic's software."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import Any

from carevault.sim.codes import (
    ENCOUNTER_TYPES,
    FEE_SCHEDULE,
    FEES,
    MEDICATIONS,
    OBSERVATIONS,
    REPORTS,
    SPECIALITIES,
    SPECIALITY_LABELS,
    V3_ACT,
)
from carevault.sim.elements import instant, quantity
from carevault.sim.patients import HKID_SYSTEM
from carevault.sim.workload.world import BookedVisit

_OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
#: Medicines a consultation may end with (acute care), by speciality.
PRESCRIPTIONS = {
    "general_practice": ("paracetamol", "amlodipine", "metformin", "loratadine", "omeprazole"),
    "paediatrics": ("paracetamol_syrup", "amoxicillin", "chlorphenamine"),
}


def _ref(kind: str, ident: str) -> dict[str, str]:
    return {"reference": f"{kind}/{ident}"}


def appointment(
    patient_id: str,
    practitioner_id: str,
    location_id: str,
    speciality: str,
    start: datetime,
    end: datetime,
    booked_at: datetime,
    slot_id: str | None = None,
) -> dict[str, Any]:
    label = SPECIALITY_LABELS[speciality][0]
    body: dict[str, Any] = {
        "resourceType": "Appointment",
        "status": "booked",
        "serviceType": [SPECIALITIES[speciality].concept(label)],
        "start": instant(start),
        "end": instant(end),
        "minutesDuration": int((end - start).total_seconds() // 60),
        "created": instant(booked_at),
        "participant": [
            {"actor": _ref("Patient", patient_id), "status": "accepted"},
            {"actor": _ref("Practitioner", practitioner_id), "status": "accepted"},
            {"actor": _ref("Location", location_id), "status": "accepted"},
        ],
    }
    if slot_id is not None:
        body["slot"] = [_ref("Slot", slot_id)]
    return body


def encounter(visit: BookedVisit, kind: str, practitioner_id: str) -> dict[str, Any]:
    label = SPECIALITY_LABELS[visit.speciality][0]
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": V3_ACT, "code": "AMB", "display": "ambulatory"},
        "type": [ENCOUNTER_TYPES[kind].concept()],
        "serviceType": SPECIALITIES[visit.speciality].concept(label),
        "subject": _ref("Patient", visit.patient_id),
        "participant": [
            {
                "type": [{"coding": [{"system": _PARTICIPATION, "code": "PPRF"}]}],
                "individual": _ref("Practitioner", practitioner_id),
            }
        ],
        "appointment": [_ref("Appointment", visit.appointment_id)],
        "period": {"start": instant(visit.start), "end": instant(visit.end)},
        "location": [{"location": _ref("Location", visit.location_id), "status": "completed"}],
        "serviceProvider": _ref("Organization", visit.clinic_id),
    }


def observation(
    patient_id: str,
    encounter_id: str | None,
    key: str,
    category: str,
    value: dict[str, Any],
    moment: datetime,
    performer: dict[str, str],
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": _OBSERVATION_CATEGORY, "code": category}]}],
        "code": OBSERVATIONS[key].concept(),
        "subject": _ref("Patient", patient_id),
        "effectiveDateTime": instant(moment),
        "performer": [performer],
        **value,
    }
    if encounter_id is not None:
        body["encounter"] = _ref("Encounter", encounter_id)
    return body


def vital_signs(
    rng: random.Random, patient_id: str, moment: datetime, nurse_id: str, age: int
) -> dict[str, Any]:
    performer = _ref("Practitioner", nurse_id)
    if age < 16 or rng.random() < 0.3:
        value = {"valueQuantity": quantity(round(rng.gauss(37.2, 0.6), 1), "Cel")}
        return observation(patient_id, None, "temperature", "vital-signs", value, moment, performer)
    systolic = int(rng.gauss(128, 14))
    components = [
        {"code": OBSERVATIONS["systolic"].concept(), "valueQuantity": quantity(systolic, "mm[Hg]")},
        {
            "code": OBSERVATIONS["diastolic"].concept(),
            "valueQuantity": quantity(min(int(rng.gauss(80, 8)), systolic - 25), "mm[Hg]"),
        },
    ]
    return observation(
        patient_id, None, "bp_panel", "vital-signs", {"component": components}, moment, performer
    )


def prescription(
    medicine: str, patient_id: str, encounter_id: str, moment: datetime, physician_id: str
) -> dict[str, Any]:
    drug = MEDICATIONS[medicine]
    return {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": drug.concept.concept(drug.product),
        "subject": _ref("Patient", patient_id),
        "encounter": _ref("Encounter", encounter_id),
        "authoredOn": instant(moment),
        "requester": _ref("Practitioner", physician_id),
        "dosageInstruction": [{"text": drug.dosage}],
        "dispenseRequest": {"quantity": {"value": drug.quantity, "unit": drug.unit}},
    }


def lab_results(
    rng: random.Random, patient_id: str, moment: datetime, clinic_id: str
) -> list[dict[str, Any]]:
    """A lipid panel from the laboratory: the results, then the report grouping them."""
    performer = _ref("Organization", clinic_id)
    ldl = round(rng.gauss(3.0, 0.6), 1)
    values = {"ldl": ldl, "hdl": round(rng.gauss(1.3, 0.2), 2), "cholesterol": round(ldl + 2, 1)}
    results = [
        observation(
            patient_id,
            None,
            key,
            "laboratory",
            {"valueQuantity": quantity(value, "mmol/L")},
            moment,
            performer,
        )
        for key, value in values.items()
    ]
    report = {
        "resourceType": "DiagnosticReport",
        "status": "final",
        "code": REPORTS["lipid_panel"].concept(),
        "subject": _ref("Patient", patient_id),
        "effectiveDateTime": instant(moment),
        "issued": instant(moment + timedelta(minutes=5)),
        "performer": [performer],
        "conclusion": f"LDL cholesterol {ldl} mmol/L",
    }
    return [*results, report]


def claim(
    patient_id: str,
    coverage_id: str,
    clinic_id: str,
    speciality: str,
    visit_day: date,
    created: datetime,
) -> dict[str, Any]:
    code, display, amount = FEES.get(speciality, FEES["general_practice"])
    return {
        "resourceType": "Claim",
        "status": "active",
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                    "code": "professional",
                }
            ]
        },
        "use": "claim",
        "patient": _ref("Patient", patient_id),
        "created": instant(created),
        "provider": _ref("Organization", clinic_id),
        "priority": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/processpriority",
                    "code": "normal",
                }
            ]
        },
        "insurance": [{"sequence": 1, "focal": True, "coverage": _ref("Coverage", coverage_id)}],
        "item": [
            {
                "sequence": 1,
                "productOrService": {
                    "coding": [{"system": FEE_SCHEDULE, "code": code, "display": display}]
                },
                "servicedDate": visit_day.isoformat(),
                "net": {"value": amount, "currency": "HKD"},
            }
        ],
        "total": {"value": amount, "currency": "HKD"},
    }


def care_team(
    patient_id: str, clinic_id: str, members: list[str], start: datetime, end: datetime
) -> dict[str, Any]:
    return {
        "resourceType": "CareTeam",
        "status": "active",
        "subject": _ref("Patient", patient_id),
        "period": {"start": instant(start), "end": instant(end)},
        "participant": [{"member": _ref("Practitioner", member)} for member in members],
        "managingOrganization": [_ref("Organization", clinic_id)],
    }


def registration(
    family: str,
    given: str,
    female: bool,
    birth_date: date,
    hkid: str,
    phone: str,
    address: dict[str, Any],
    clinic_id: str,
) -> dict[str, Any]:
    """A new patient registered at the front desk."""
    return {
        "resourceType": "Patient",
        "identifier": [{"use": "official", "system": HKID_SYSTEM, "value": hkid}],
        "active": True,
        "name": [
            {"use": "official", "text": f"{family} {given}", "family": family, "given": [given]}
        ],
        "telecom": [{"system": "phone", "value": phone, "use": "mobile"}],
        "gender": "female" if female else "male",
        "birthDate": birth_date.isoformat(),
        "address": [address],
        "managingOrganization": _ref("Organization", clinic_id),
    }


def prescription_for(rng: random.Random, speciality: str) -> str | None:
    choices = PRESCRIPTIONS.get(speciality)
    return rng.choice(choices) if choices else None
