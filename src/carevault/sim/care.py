"""Rarer parts of a chart: imaging studies, goals and care plans of chronic conditions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from carevault.sim.chart import Chart, Visit
from carevault.sim.codes import CARE_PLANS, IMAGING, OBSERVATIONS, PROCEDURES
from carevault.sim.elements import instant, new_uuid

_DICOM_UID_SYSTEM = "urn:dicom:uid"


def _dicom_uid(chart: Chart) -> str:
    # The 2.25 arc turns a UUID into a DICOM UID (ISO/IEC 9834-8).
    return f"2.25.{new_uuid(chart.rng).int}"


def imaging_study(chart: Chart, visit: Visit, kind: str, reason: str | None = None) -> str:
    modality, sop_class, body_site = IMAGING[kind]
    count = chart.rng.randint(1, 4)
    series_uid = _dicom_uid(chart)
    instances = [
        {"uid": _dicom_uid(chart), "number": number,
         "sopClass": {"system": "urn:ietf:rfc:3986", "code": f"urn:oid:{sop_class}"}}
        for number in range(1, count + 1)
    ]  # fmt: skip
    body: dict[str, Any] = {
        "identifier": [{"system": _DICOM_UID_SYSTEM, "value": f"urn:oid:{_dicom_uid(chart)}"}],
        "status": "available",
        "modality": [modality.coding()],
        "subject": chart.subject,
        "encounter": visit.reference,
        "started": instant(visit.start),
        "referrer": visit.performer,
        "numberOfSeries": 1,
        "numberOfInstances": count,
        "location": {"reference": f"Location/{visit.clinic.location_id}"},
        "series": [{
            "uid": series_uid, "number": 1, "modality": modality.coding(),
            "numberOfInstances": count, "bodySite": body_site.coding(), "instance": instances,
        }],
    }  # fmt: skip
    if kind == "bitewing":
        body["procedureCode"] = [PROCEDURES["bitewing"].concept()]
    if reason is not None:
        body["reasonReference"] = [{"reference": f"Condition/{reason}"}]
    visit.fees.append("imaging")
    return chart.add("ImagingStudy", body)


#: Treatment targets of each chronic condition: (measure, upper limit, unit, UCUM).
GOAL_TARGETS: dict[str, tuple[str, str, float, str, str]] = {
    "hypertension": ("Blood pressure below 140/90 mmHg", "systolic", 140, "mm[Hg]", "mm[Hg]"),
    "diabetes": ("HbA1c below 7%", "hba1c", 7.0, "%", "%"),
    "hyperlipidaemia": ("LDL cholesterol below 2.6 mmol/L", "ldl", 2.6, "mmol/L", "mmol/L"),
}


def care_plan(chart: Chart, visit: Visit, key: str, condition_id: str) -> tuple[str, str]:
    """A Goal and the CarePlan that pursues it for the chronic condition ``key``."""
    text, measure, limit, unit, ucum = GOAL_TARGETS[key]
    start = visit.start.date()
    goal_id = chart.add("Goal", {
        "lifecycleStatus": "active",
        "description": {"text": text},
        "subject": chart.subject,
        "startDate": start.isoformat(),
        "target": [{
            "measure": OBSERVATIONS[measure].concept(),
            "detailRange": {"high": {"value": limit, "unit": unit,
                                     "system": "http://unitsofmeasure.org", "code": ucum}},
            "dueDate": (start + timedelta(days=180)).isoformat(),
        }],
        "addresses": [{"reference": f"Condition/{condition_id}"}],
    })  # fmt: skip
    category, activities = CARE_PLANS[key]
    plan_id = chart.add("CarePlan", {
        "status": "active",
        "intent": "plan",
        "category": [category.concept()],
        "title": category.display,
        "subject": chart.subject,
        "encounter": visit.reference,
        "period": {"start": start.isoformat()},
        "created": instant(visit.end),
        "author": visit.performer,
        "addresses": [{"reference": f"Condition/{condition_id}"}],
        "goal": [{"reference": f"Goal/{goal_id}"}],
        "activity": [{"detail": {"code": activity.concept(), "status": "in-progress"}}
                     for activity in activities],
    })  # fmt: skip
    return goal_id, plan_id
