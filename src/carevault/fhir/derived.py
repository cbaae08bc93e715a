"""What writing a resource works out from the resource alone, before any key or row:
its search terms, its sensitivity marker, the data categories it holds, the references
that say whose record it is and where it belongs, its clear date values, and what a
record of care says about care.

A bulk load works these out in the processes that check its records, beside the
writer (``bulk/checking.py``), from the very bytes the writer reads: the writer then
only hashes the terms under the index key, seals and inserts. Anything else computes
them where it writes, with the same functions, so both ways agree.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Any, NamedTuple

from carevault.clock import to_micros
from carevault.domain.categories import HEALTH_CATEGORIES, DataCategory
from carevault.fhir.care import CARE_TYPES, CareFacts, care_facts
from carevault.fhir.categories import element_categories, main_category
from carevault.fhir.elements import reference_targets
from carevault.fhir.indexing import (
    ORDINARY_TERM,
    SENSITIVE_TERM,
    clear_dates,
    index_term_rows,
)
from carevault.fhir.registry import ResourceType

#: (type, id) of relative references, in the order the resource holds them.
Targets = tuple[tuple[str, str], ...]


class Derived(NamedTuple):
    """A tuple: thousands a second cross from the checking processes to the writer, and
    a tuple is the cheapest thing to send."""

    #: (parameter, term, kept in the clear) of each search term, as ``index_terms`` gives.
    terms: tuple[tuple[str, str, bool], ...]
    #: The sensitivity marker (``indexing.sensitivity_term``); None for non-health types.
    marker: str | None
    #: The categories present (``categories.element_categories``).
    categories: frozenset[DataCategory]
    #: The references at the type's patient paths (whose record it is).
    patients: Targets
    #: The references at each of the type's clinic paths, path by path (none for "id").
    clinics: tuple[Targets, ...]
    #: (parameter, low, high in microseconds) of each clear date value
    #: (``indexing.clear_dates``: only resources that are not patient data have any).
    dates: tuple[tuple[str, int | None, int | None], ...]
    #: What a record of care says about care (``fhir.care``); None for any other record,
    #: and for one that opens nothing.
    care: CareFacts | None = None


def derive(rt: ResourceType, resource: dict[str, Any], zone: tzinfo) -> Derived:
    """The resource's terms, marker and categories; its main category worked out once
    (it walks every coding of the record) for both the marker and the categories."""
    main = main_category(rt, resource)
    marker = None
    if rt.category in HEALTH_CATEGORIES:
        marker = SENSITIVE_TERM if main is DataCategory.SENSITIVE_CLINICAL else ORDINARY_TERM
    return Derived(
        terms=index_term_rows(rt, resource, zone),
        marker=marker,
        categories=frozenset(element_categories(rt, resource, main=main)),
        patients=patient_targets(rt, resource),
        clinics=clinic_targets(rt, resource),
        dates=clear_date_values(rt, resource, zone),
        care=care_facts(rt.name, resource, zone) if rt.name in CARE_TYPES else None,
    )


def patient_targets(rt: ResourceType, resource: dict[str, Any]) -> Targets:
    """The references at ``rt``'s patient paths: the first to a Patient says whose."""
    return tuple(reference_targets(resource, rt.patient_paths))


def clinic_targets(rt: ResourceType, resource: dict[str, Any]) -> tuple[Targets, ...]:
    """The references at each of ``rt``'s clinic paths, in order ("id": the record is
    the clinic, and names none)."""
    return tuple(
        () if path == "id" else tuple(reference_targets(resource, (path,)))
        for path in rt.clinic_paths
    )


def clear_date_values(
    rt: ResourceType, resource: dict[str, Any], zone: tzinfo
) -> tuple[tuple[str, int | None, int | None], ...]:
    """``indexing.clear_dates`` as (parameter, low, high) in microseconds."""
    return tuple(
        (
            name,
            None if found.low is None else to_micros(found.low),
            None if found.high is None else to_micros(found.high),
        )
        for name, found in clear_dates(rt, resource, zone)
    )
