"""A Parameters resource read as every part sent, with the type of each value."""

from __future__ import annotations

from typing import Any

import pytest

from carevault.fhir.parameters import NotParameters, Part, parts


def test_every_part_is_kept_in_order_with_its_value_type_repeats_included() -> None:
    document = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "_type", "valueString": "Patient"},
            {"name": "_since", "valueInstant": "2024-01-01T00:00:00Z"},
            {"name": "_type", "valueString": "Observation"},
            {"name": "patient", "valueReference": {"reference": "Patient/1"}},
            {"name": "empty"},
        ],
    }
    assert parts(document) == [
        Part("_type", "valueString", "Patient"),
        Part("_since", "valueInstant", "2024-01-01T00:00:00Z"),
        Part("_type", "valueString", "Observation"),
        Part("patient", "valueReference", {"reference": "Patient/1"}),
        Part("empty", None),
    ]


def test_no_parameters_at_all_is_an_empty_list() -> None:
    assert parts({"resourceType": "Parameters"}) == []


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"resourceType": "Patient"},
        {"resourceType": "Parameters", "parameter": {}},
        {"resourceType": "Parameters", "parameter": [{"valueString": "x"}]},
        {"resourceType": "Parameters", "parameter": [{"name": 3}]},
        {"resourceType": "Parameters", "parameter": ["_type"]},
        {
            "resourceType": "Parameters",
            "parameter": [{"name": "a", "valueString": "x", "valueCode": "y"}],
        },
    ],
)
def test_what_is_not_a_parameters_resource_is_refused(document: Any) -> None:
    with pytest.raises(NotParameters):
        parts(document)
