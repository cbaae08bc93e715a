"""Why a patient came is clinical, wherever it is held: an Encounter's or Appointment's
reason and diagnoses, a care team's reason, a claim's diagnoses and procedures are
clinical elements of records that are not (a visit, a claim), and sensitive_clinical when
a code is. A front desk's cut of a booking leaves its reason out; billing's cut of a
claim its diagnoses."""

from __future__ import annotations

from typing import Any

import pytest

from carevault.domain.categories import DataCategory as C
from carevault.fhir.categories import (
    changed_categories,
    element_categories,
    main_category,
    own_categories,
)
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.fhir.subsetting import SUBSETTED, mark_subsetted, restore_withheld, subset

DESK = frozenset({C.IDENTITY, C.CONTACT, C.DEMOGRAPHIC, C.VISIT})
BILLING = frozenset({C.IDENTITY, C.FINANCIAL})
ICD10 = "http://hl7.org/fhir/sid/icd-10"
FLU = {"coding": [{"system": ICD10, "code": "J10"}]}
HIV = {"coding": [{"system": ICD10, "code": "B20"}]}

#: Each type and the elements of it that are clinical.
CLINICAL_ELEMENTS = {
    "Encounter": ("reasonCode", "reasonReference", "diagnosis", "hospitalization"),
    "Appointment": ("reasonCode", "reasonReference"),
    "CareTeam": ("reasonCode", "reasonReference"),
    "Claim": ("diagnosis", "procedure"),
    "ExplanationOfBenefit": ("diagnosis", "procedure"),
}


def _value(element: str, code: dict[str, Any]) -> Any:
    """A value of ``element`` that holds ``code``."""
    if element == "reasonCode":
        return [code]
    if element == "reasonReference":
        return [{"reference": "Condition/c1", "display": "a reason"}]
    if element == "hospitalization":
        return {"admitSource": code}
    if element == "procedure":
        return [{"sequence": 1, "procedureCodeableConcept": code}]
    if element == "diagnosis" and code is not None:
        return [{"sequence": 1, "diagnosisCodeableConcept": code}]
    raise AssertionError(element)


def _diagnosis(type_name: str, code: dict[str, Any]) -> Any:
    if type_name == "Encounter":
        return [{"condition": {"reference": "Condition/c1"}, "use": code}]
    return _value("diagnosis", code)


@pytest.mark.parametrize(
    ("type_name", "element"),
    [(name, element) for name, elements in CLINICAL_ELEMENTS.items() for element in elements],
)
def test_a_reason_or_diagnosis_is_clinical_and_cut_from_who_may_not_read_it(
    type_name: str, element: str
) -> None:
    rt = RESOURCE_TYPES[type_name]
    value = _diagnosis(type_name, FLU) if element == "diagnosis" else _value(element, FLU)
    record = {"resourceType": type_name, "id": "r1", "status": "active", element: value}
    reader = DESK if rt.category is C.VISIT else BILLING

    assert C.CLINICAL in element_categories(rt, record)
    assert {C.CLINICAL, C.SENSITIVE_CLINICAL} <= own_categories(rt)
    shown = subset(rt, record, reader)
    assert shown is not None and element not in shown
    assert shown["meta"]["security"] == [SUBSETTED]
    # Restored on the reader's update, never counted as changed by it.
    sent = {"resourceType": type_name, "id": "r1", "status": "cancelled"}
    merged = restore_withheld(rt, sent, record, reader)
    assert merged[element] == value
    assert C.CLINICAL not in changed_categories(rt, merged, record)


@pytest.mark.parametrize("type_name", ["Encounter", "Appointment", "CareTeam"])
def test_a_sensitive_reason_is_sensitive_clinical_and_the_visit_stays_a_visit(
    type_name: str,
) -> None:
    rt = RESOURCE_TYPES[type_name]
    record = {"resourceType": type_name, "id": "r1", "reasonCode": [HIV]}
    clinician = DESK | {C.CLINICAL}

    assert main_category(rt, record) is C.VISIT
    assert element_categories(rt, record) == {C.VISIT, C.SENSITIVE_CLINICAL}
    shown = subset(rt, record, clinician)
    assert shown is not None and "reasonCode" not in shown
    assert subset(rt, record, clinician | {C.SENSITIVE_CLINICAL}) == record
    # A sensitive reason replaced by an ordinary one changes sensitive data.
    ordinary = {**record, "reasonCode": [FLU]}
    assert changed_categories(rt, ordinary, record) == {C.VISIT, C.CLINICAL, C.SENSITIVE_CLINICAL}


def test_a_claims_sensitive_diagnosis_is_sensitive_clinical() -> None:
    rt = RESOURCE_TYPES["Claim"]
    record = {"resourceType": "Claim", "id": "c1", "diagnosis": _value("diagnosis", HIV)}

    assert main_category(rt, record) is C.FINANCIAL
    assert element_categories(rt, record) == {C.FINANCIAL, C.SENSITIVE_CLINICAL}
    shown = subset(rt, record, BILLING | {C.CLINICAL})
    assert shown is not None and "diagnosis" not in shown


def test_a_visit_without_a_reason_holds_no_clinical_data() -> None:
    rt = RESOURCE_TYPES["Appointment"]
    record = {"resourceType": "Appointment", "id": "a1", "status": "booked"}

    assert element_categories(rt, record) == {C.VISIT}
    # Shown whole, labelled: the desk reads no narrative of a type that may hold reasons.
    assert subset(rt, record, DESK) == mark_subsetted(dict(record))
