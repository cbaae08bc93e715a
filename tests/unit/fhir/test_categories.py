"""What a role's cut takes out of a record, puts back on its update, and counts as
changed: a primitive's ``_name`` sibling goes with its element (an extension beside
``deceasedDateTime`` is as clinical as the date)."""

from __future__ import annotations

from typing import Any

from carevault.domain.categories import DataCategory as C
from carevault.fhir.categories import (
    SUBSETTED,
    changed_categories,
    element_categories,
    restore_withheld,
    subset,
)
from carevault.fhir.registry import RESOURCE_TYPES

PATIENT = RESOURCE_TYPES["Patient"]
#: What a front desk may read.
DESK = frozenset({C.IDENTITY, C.CONTACT, C.DEMOGRAPHIC, C.VISIT})
CAUSE = {"extension": [{"url": "urn:cause-of-death", "valueString": "overdose"}]}


def _patient(**more: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": "p1", "name": [{"family": "Chan"}], **more}


def test_the_sibling_of_a_withheld_primitive_is_withheld_with_it() -> None:
    record = _patient(deceasedDateTime="2026-11-01", _deceasedDateTime=CAUSE)

    shown = subset(PATIENT, record, DESK)

    assert shown is not None
    assert set(shown) == {"resourceType", "id", "name", "meta"}
    assert shown["meta"]["security"] == [SUBSETTED]
    assert C.CLINICAL in element_categories(PATIENT, _patient(_deceasedDateTime=CAUSE))


def test_an_update_keeps_what_the_role_could_not_see_and_counts_what_it_adds() -> None:
    stored = _patient(deceasedDateTime="2026-11-01", _deceasedDateTime=CAUSE)
    sent = _patient(telecom=[{"system": "phone", "value": "5555 0123"}])

    merged = restore_withheld(PATIENT, sent, stored, DESK)

    assert merged["_deceasedDateTime"] == CAUSE and merged["deceasedDateTime"] == "2026-11-01"
    assert changed_categories(PATIENT, merged, stored) == {C.IDENTITY, C.CONTACT}
    assert C.CLINICAL in changed_categories(PATIENT, _patient(_deceasedDateTime=CAUSE), _patient())
