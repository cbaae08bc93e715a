"""``_summary`` and ``_elements``: what each view keeps of a resource, from the models'
own flags, and which values are refused."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from carevault.domain.categories import DataCategory
from carevault.fhir import jsonio
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.fhir.subsetting import SUBSETTED, subset
from carevault.fhir.views import (
    FULL,
    MAX_ELEMENTS,
    Summary,
    View,
    ViewError,
    asked_view,
    elements_of,
    shown,
    shown_body,
)

HKID = "http://carevault.hk/sid/hkid"


def patient() -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": "p1",
        "meta": {"versionId": "2", "lastUpdated": "2026-11-27T01:00:00Z"},
        "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'},
        "identifier": [{"system": HKID, "value": "A123456(3)"}],
        "name": [{"family": "Chan"}],
        "birthDate": "1970-03-14",
        "_birthDate": {"extension": [{"url": "http://example.org/x", "valueString": "y"}]},
        "contact": [{"name": {"family": "Wong"}}],
        "communication": [{"language": {"text": "Cantonese"}}],
    }


def observation() -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "o1",
        "meta": {"versionId": "1"},
        "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'},
        "status": "final",
        "code": {"text": "HbA1c"},
        "subject": {"reference": "Patient/p1"},
        "valueQuantity": {"value": jsonio.FhirDecimal("7.20"), "unit": "%"},
        "note": [{"text": "fasting"}],
    }


def labels(resource: dict[str, Any]) -> list[Any]:
    return list(resource.get("meta", {}).get("security", []))


def view(type_name: str, *params: tuple[str, str], strict: bool = False) -> View:
    return asked_view(type_name, list(params), search=True, strict=strict).view


def test_summary_and_mandatory_elements_come_from_the_models() -> None:
    patient_elements = elements_of("Patient")
    assert {"identifier", "name", "birthDate", "gender"} <= patient_elements.summary
    assert not {"contact", "communication", "text", "photo"} & patient_elements.summary
    assert elements_of("Observation").mandatory == {"status", "code"}
    assert elements_of("Slot").mandatory == {"schedule", "status", "start", "end"}
    assert "valueQuantity" in elements_of("Observation").choices["value"]
    assert elements_of("Patient") is elements_of("Patient")  # derived once


def test_summary_true_keeps_the_summary_elements_id_and_meta_and_is_labelled() -> None:
    cut = shown("Patient", patient(), View(summary=Summary.TRUE))
    assert set(cut) == {"resourceType", "id", "meta", "identifier", "name", "birthDate"} | {
        "_birthDate"
    }
    assert labels(cut) == [SUBSETTED]
    assert cut["meta"]["versionId"] == "2"


def test_summary_text_keeps_the_narrative_id_meta_and_mandatory_elements() -> None:
    cut = shown("Observation", observation(), View(summary=Summary.TEXT))
    assert set(cut) == {"resourceType", "id", "meta", "text", "status", "code"}
    assert labels(cut) == [SUBSETTED]


def test_summary_data_takes_away_the_narrative_only() -> None:
    original = observation()
    cut = shown("Observation", original, View(summary=Summary.DATA))
    assert set(cut) == set(original) - {"text"}
    assert labels(cut) == [SUBSETTED]
    without_text = {k: v for k, v in original.items() if k != "text"}
    assert shown("Observation", without_text, View(summary=Summary.DATA)) is without_text


def test_elements_keep_what_is_named_and_the_mandatory_elements() -> None:
    cut = shown("Observation", observation(), view("Observation", ("_elements", "value,note")))
    assert set(cut) == {"resourceType", "id", "meta", "status", "code", "valueQuantity", "note"}
    assert labels(cut) == [SUBSETTED]
    birth = shown("Patient", patient(), view("Patient", ("_elements", "birthDate")))
    assert set(birth) == {"resourceType", "id", "meta", "birthDate", "_birthDate"}


def test_a_view_that_takes_nothing_away_is_the_same_resource_unlabelled() -> None:
    original = observation()
    everything = ",".join(sorted(set(original) - {"resourceType", "id", "meta", "valueQuantity"}))
    asked = view("Observation", ("_elements", everything + ",value"))
    assert shown("Observation", original, asked) is original
    assert shown("Observation", original, FULL) is original
    body = jsonio.dumps(original)
    assert shown_body("Observation", body, FULL) is body
    assert shown_body("Observation", body, asked) is body


def test_a_view_of_the_roles_cut_adds_no_second_label_and_changes_nothing_shared() -> None:
    """The front desk's cut (no HKID) already carries the label; a view of it is
    labelled once, and the stored resource's meta is never touched."""
    stored = patient()
    before = copy.deepcopy(stored)
    desk = subset(
        RESOURCE_TYPES["Patient"],
        stored,
        frozenset({DataCategory.IDENTITY, DataCategory.CONTACT, DataCategory.DEMOGRAPHIC}),
    )
    assert desk is not None and "identifier" not in desk
    cut = shown("Patient", desk, view("Patient", ("_elements", "identifier,name")))
    assert set(cut) == {"resourceType", "id", "meta", "name"}
    assert labels(cut) == [SUBSETTED]
    assert stored == before


def test_summary_values_are_the_five_fhir_defines() -> None:
    assert view("Patient", ("_summary", "false")) == FULL
    assert asked_view("Patient", [("_summary", "count")], search=True, strict=True).count_only
    for bad in ("bogus", "TRUE", "", "true,text"):
        with pytest.raises(ViewError, match="_summary must be one of"):
            view("Patient", ("_summary", bad))
    with pytest.raises(ViewError, match="searches only"):
        asked_view("Patient", [("_summary", "count")], search=False, strict=False)
    with pytest.raises(ViewError, match="more than once"):
        view("Patient", ("_summary", "true"), ("_summary", "data"))


def test_summary_and_elements_together_are_refused() -> None:
    for summary in ("true", "text", "data", "false"):
        with pytest.raises(ViewError, match="cannot be used together"):
            view("Patient", ("_summary", summary), ("_elements", "name"))


@pytest.mark.parametrize(
    "value",
    ["", "name,", "a.b", "name.given", "$x", "_birthDate", "-text", "Name", "na me", "name;drop"],
)
def test_what_is_not_an_element_name_is_refused_in_every_mode(value: str) -> None:
    for strict in (False, True):
        with pytest.raises(ViewError, match="top-level element names"):
            view("Patient", ("_elements", value), strict=strict)


def test_ten_thousand_names_are_refused() -> None:
    names = ",".join(f"e{index}" for index in range(10_000))
    with pytest.raises(ViewError, match=f"more than {MAX_ELEMENTS}"):
        view("Patient", ("_elements", names))


def test_a_name_the_type_lacks_is_refused_when_strict_and_ignored_when_lenient() -> None:
    with pytest.raises(ViewError, match="'shoeSize' is not an element of Patient"):
        view("Patient", ("_elements", "name,shoeSize"), strict=True)
    lenient = asked_view("Patient", [("_elements", "name,shoeSize")], search=True, strict=False)
    assert lenient.ignored == ("shoeSize",)
    assert lenient.view.elements == {"name"}
    assert lenient.applied == (("_elements", "name"),)


def test_what_fhirpy_sends_with_elements_is_understood() -> None:
    """fhirpy's ``.elements("name")`` adds ``id`` and ``resourceType``."""
    asked = asked_view("Patient", [("_elements", "resourceType,name,id")], search=True, strict=True)
    assert asked.view.elements == {"resourceType", "name", "id"}
