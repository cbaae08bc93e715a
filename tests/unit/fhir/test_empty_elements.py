"""R4 element.html ele-1, "All FHIR elements must have a @value or children": an empty
object is refused wherever it stands, as an empty array is (integrator round 65), by
REST's validation and by an import's check of each line alike."""

from __future__ import annotations

from typing import Any

import pytest

from carevault.bulk.checking import verdict
from carevault.fhir.content import DEFAULT_LIMITS
from carevault.fhir.validate import InvalidResource, validate_resource

OBSERVATION = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"text": "weight"},
    "subject": {"reference": "Patient/p-1"},
}

EMPTIED: list[tuple[dict[str, Any], str]] = [
    ({"valueQuantity": {}}, "Observation.valueQuantity"),
    ({"code": {}}, "Observation.code"),
    ({"meta": {}}, "Observation.meta"),
    (
        {"component": [{"code": {"text": "a"}, "valueQuantity": {}}]},
        "Observation.component[0].valueQuantity",
    ),
    (
        {"extension": [{"url": "http://x.example/e", "valueQuantity": {}}]},
        "Observation.extension[0].valueQuantity",
    ),
    ({"_status": {}}, "Observation._status"),
    ({"note": [{"text": "n", "_text": {}}]}, "Observation.note[0]._text"),
    ({"contained": [{}]}, "Observation.contained[0]"),
]


@pytest.mark.parametrize(("extra", "where"), EMPTIED)
def test_an_empty_object_is_refused_where_it_stands(extra: dict[str, Any], where: str) -> None:
    with pytest.raises(InvalidResource) as refused:
        validate_resource({**OBSERVATION, **extra}, "Observation")
    assert refused.value.status == 400
    [issue] = refused.value.issues
    assert issue.diagnostics == f"{where}: empty objects are not allowed"
    assert issue.expression == (where,)


@pytest.mark.parametrize(("extra", "where"), EMPTIED)
def test_an_import_line_holding_an_empty_object_is_refused(
    extra: dict[str, Any], where: str
) -> None:
    for compiled in (True, False):
        said = verdict({**OBSERVATION, **extra}, None, DEFAULT_LIMITS, compiled=compiled)
        assert said == f"{where}: empty objects are not allowed"


def test_a_null_keeping_a_place_in_a_primitive_list_is_still_taken() -> None:
    patient = {
        "resourceType": "Patient",
        "name": [
            {
                "given": ["A", "B"],
                "_given": [
                    None,
                    {"extension": [{"url": "http://x.example/e", "valueString": "b"}]},
                ],
            }
        ],
    }
    assert validate_resource(patient, "Patient") is patient
