"""Every kind of record the simulator makes is valid FHIR: seeding loads them without
validating each one (``sim/loader.py``), so this is where they are checked."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from carevault.fhir.validate import validate_resource
from carevault.sim.group import build_group
from carevault.sim.patients import generate_patients

#: Records of one type checked from the directory (a week of slots is thousands alike).
PER_TYPE = 150


def test_every_record_of_the_simulated_group_is_valid_fhir() -> None:
    group = build_group(7, date(2026, 3, 2))
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for resource in group.resources():
        by_type[resource["resourceType"]].append(resource)
    checked: set[str] = set()
    for name, resources in by_type.items():
        for resource in resources[:PER_TYPE]:
            validate_resource(resource, name)
        checked.add(name)
    for record in generate_patients(group, 40, 7, group.today):
        for resource in (record.patient, *record.resources):
            validate_resource(resource, resource["resourceType"])
            checked.add(resource["resourceType"])
    assert {"Patient", "Encounter", "Observation", "Organization", "Slot"} <= checked
