"""What a bulk load's checking processes work out for the writer is what the writer
would work out itself: the same terms, marker and categories, record by record."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest

from carevault.domain.categories import DataCategory
from carevault.fhir import jsonio
from carevault.fhir.categories import element_categories
from carevault.fhir.derived import derive
from carevault.fhir.indexing import SENSITIVE_TERM, index_terms, sensitivity_term
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.sim.group import build_group
from carevault.sim.patients import generate_patients
from tests.support.synthea import BUNDLES

ZONE = ZoneInfo("Asia/Hong_Kong")
HIV_TEST = {
    "resourceType": "Observation",
    "id": "hiv",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "75622-1"}]},
    "subject": {"reference": "Patient/p1"},
    "effectiveDateTime": "2024-03-01T10:00:00+08:00",
}


def _records() -> list[dict[str, Any]]:
    found = [
        entry["resource"]
        for path in BUNDLES[:1]
        for entry in jsonio.parse(path.read_bytes())["entry"]
        if entry["resource"]["resourceType"] in RESOURCE_TYPES
    ]
    group = build_group(7, None)
    for record in generate_patients(group, 3, 7, group.today):
        found.extend([record.patient, *record.resources])
    found.extend(list(group.resources())[:20])
    return [*found, HIV_TEST]


@pytest.mark.parametrize("resource", _records()[::3] + [HIV_TEST])
def test_derived_facts_are_what_the_writer_works_out(resource: dict[str, Any]) -> None:
    rt = RESOURCE_TYPES[resource["resourceType"]]

    derived = derive(rt, resource, ZONE)

    assert derived.terms == tuple(
        (param.name, term, param.clear) for param, term in index_terms(rt, resource, ZONE)
    )
    assert derived.marker == sensitivity_term(rt, resource)
    assert derived.categories == frozenset(element_categories(rt, resource))


def test_a_sensitive_record_is_marked_and_categorised_so() -> None:
    derived = derive(RESOURCE_TYPES["Observation"], HIV_TEST, ZONE)
    assert derived.marker == SENSITIVE_TERM
    assert DataCategory.SENSITIVE_CLINICAL in derived.categories
