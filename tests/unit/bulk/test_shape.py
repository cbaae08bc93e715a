"""The compiled check passes only what the full validation passes, and passes most
valid records (else imports would pay for the full validation after all)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from carevault.bulk.checking import verdict
from carevault.bulk.shape import Shapes
from carevault.bulk.sources import read_items
from carevault.fhir.content import DEFAULT_LIMITS
from carevault.fhir.outcome import FhirError
from carevault.fhir.validate import validate_resource
from carevault.sim.group import build_group
from carevault.sim.patients import generate_patients

SYNTHEA = Path(__file__).resolve().parents[4] / "shared" / "fixtures" / "synthea-r4"

#: What a value can be swapped for: wrong JSON types, empties, nulls, bad formats,
#: control characters, over-long text.
_SWAPS: tuple[Any, ...] = (
    None,
    [],
    {},
    "",
    "   ",
    0,
    -1,
    1.5,
    True,
    "true",
    "x\u0000y",
    "2020-13-45",
    "2020-02-30T10:00:00Z",
    "not a code",
    "a" * 70_000,
    {"bogus": "x"},
    [None],
)


def _resources() -> list[dict[str, Any]]:
    found = [
        item.resource
        for path in sorted(SYNTHEA.glob("*_*.json"))[:3]
        for item in read_items(path, "test")
        if item.resource is not None
    ]
    group = build_group(7, None)
    for record in generate_patients(group, 8, 7, group.today):
        found.extend([record.patient, *record.resources])
    found.extend(list(group.resources())[:40])
    return found


def _full(resource: Any) -> bool:
    try:
        validate_resource(copy.deepcopy(resource), limits=DEFAULT_LIMITS)
    except FhirError:
        return False
    return True


def _mutants(node: Any, depth: int = 0) -> Iterator[tuple[Any, Any]]:
    """(rebuild, original) pairs: each yields a changed copy of the resource."""
    if depth > 3:
        return
    if isinstance(node, dict):
        for key, value in node.items():
            for swap in (*_SWAPS, "<missing>"):
                yield node, (key, swap)
            if isinstance(value, list) and value:
                yield node, (key, value[0])  # a list where one value goes, or the reverse
                yield from _mutants(value[0], depth + 1)
            elif isinstance(value, dict):
                yield node, (key, [value])
                yield from _mutants(value, depth + 1)
        yield node, ("bogusElement", "x")


@pytest.fixture(scope="module")
def resources() -> list[dict[str, Any]]:
    return _resources()


def test_every_record_the_check_passes_the_full_validation_passes(
    resources: list[dict[str, Any]],
) -> None:
    shapes = Shapes(DEFAULT_LIMITS)
    passed = [resource for resource in resources if shapes.certainly_valid(resource)]
    assert all(_full(resource) for resource in passed)
    # The point of the check: most valid records never reach the pydantic models.
    assert len(passed) >= 0.9 * len(resources)


def test_no_broken_record_passes_the_check_unless_the_full_validation_accepts_it(
    resources: list[dict[str, Any]],
) -> None:
    shapes = Shapes(DEFAULT_LIMITS)
    types_seen: dict[str, int] = {}
    tried = refused_by_both = 0
    for resource in resources:
        name = resource["resourceType"]
        if types_seen.get(name, 0) >= 1:
            continue
        types_seen[name] = types_seen.get(name, 0) + 1
        for node, (key, swap) in list(_mutants(resource)):
            had = key in node
            kept = node.get(key)
            if swap == "<missing>":
                node.pop(key, None)
            else:
                node[key] = copy.deepcopy(swap)
            try:
                mutant = copy.deepcopy(resource)
            finally:
                if had:
                    node[key] = kept
                else:
                    node.pop(key, None)
            tried += 1
            if shapes.certainly_valid(mutant):
                assert _full(mutant), (name, key, swap)
            else:
                refused_by_both += not _full(mutant)
    assert tried > 1000
    assert refused_by_both > tried // 2


def test_a_refusal_reads_the_same_as_before(resources: list[dict[str, Any]]) -> None:
    broken = copy.deepcopy(next(r for r in resources if r["resourceType"] == "Observation"))
    broken["status"] = "not a code"
    del broken["code"]
    fast = verdict(broken, None, DEFAULT_LIMITS, compiled=True)
    full = verdict(broken, None, DEFAULT_LIMITS, compiled=False)
    assert fast is not None
    assert fast == full


def test_every_type_held_compiles_ahead_with_the_models_it_holds() -> None:
    from carevault.bulk.shape import compile_all
    from carevault.fhir.registry import RESOURCE_TYPES

    # The resource types and the element models under them (HumanName, Coding, ...).
    assert compile_all(RESOURCE_TYPES) > len(RESOURCE_TYPES)
