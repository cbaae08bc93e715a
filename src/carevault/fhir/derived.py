"""What writing a resource works out from the resource alone, before any key or row:
its search terms, its sensitivity marker and the data categories it holds.

A bulk load works these out in the processes that check its records, beside the
writer (``bulk/checking.py``), from the very bytes the writer reads: the writer then
only hashes the terms under the index key, seals and inserts. Anything else computes
them where it writes, with the same functions, so both ways agree.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Any, NamedTuple

from carevault.domain.categories import HEALTH_CATEGORIES, DataCategory
from carevault.fhir.categories import element_categories, main_category
from carevault.fhir.indexing import ORDINARY_TERM, SENSITIVE_TERM, index_terms
from carevault.fhir.registry import ResourceType


class Derived(NamedTuple):
    """A tuple: thousands a second cross from the checking processes to the writer, and
    a tuple is the cheapest thing to send."""

    #: (parameter, term, kept in the clear) of each search term, as ``index_terms`` gives.
    terms: tuple[tuple[str, str, bool], ...]
    #: The sensitivity marker (``indexing.sensitivity_term``); None for non-health types.
    marker: str | None
    #: The categories present (``categories.element_categories``).
    categories: frozenset[DataCategory]


def derive(rt: ResourceType, resource: dict[str, Any], zone: tzinfo) -> Derived:
    """The resource's terms, marker and categories; its main category worked out once
    (it walks every coding of the record) for both the marker and the categories."""
    main = main_category(rt, resource)
    marker = None
    if rt.category in HEALTH_CATEGORIES:
        marker = SENSITIVE_TERM if main is DataCategory.SENSITIVE_CLINICAL else ORDINARY_TERM
    return Derived(
        terms=tuple(
            (param.name, term, param.clear) for param, term in index_terms(rt, resource, zone)
        ),
        marker=marker,
        categories=frozenset(element_categories(rt, resource, main=main)),
    )
