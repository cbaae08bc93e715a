"""One synthetic group and a 300-patient sample, built once for the sim tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from carevault.sim import ClinicGroup, PatientRecord, build_group, generate_patients

#: A Wednesday: clinics are open, the week ahead has a Saturday and a Sunday rota.
TODAY = date(2025, 3, 5)
GROUP_SEED = 7
PATIENT_SEED = 11
SAMPLE = 300


@pytest.fixture(scope="session")
def group() -> ClinicGroup:
    return build_group(GROUP_SEED, TODAY)


@pytest.fixture(scope="session")
def records(group: ClinicGroup) -> list[PatientRecord]:
    return list(generate_patients(group, SAMPLE, PATIENT_SEED, TODAY))


def every_resource(records: list[PatientRecord]) -> Iterator[dict[str, Any]]:
    for record in records:
        yield record.patient
        yield from record.resources


def references(node: Any) -> Iterator[str]:
    """Every ``reference`` string anywhere in a resource."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)
