"""Paging a search by cursor (``SearchQuery.after``) in each of ``find``'s paths: in SQL,
in SQL by the patients it names, and among candidates opened in memory. A record
updated or deleted on a page passed moves no later one past the next page (integrator
round 64)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.fhir.query import SearchQuery, parse_query
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.vault.records import Opened
from carevault.vault.search import find
from tests.support.client import FhirTestClient


def _create(api: FhirTestClient, body: dict[str, Any]) -> str:
    response = api.post_json(f"/fhir/{body['resourceType']}", body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _query(services: Services, type_name: str, params: list[tuple[str, str]]) -> SearchQuery:
    return parse_query(
        RESOURCE_TYPES[type_name],
        [*params, ("_count", "3")],
        strict=True,
        zone=services.vault.zone,
        default_count=20,
        max_count=100,
    )


def _everyone(item: Opened) -> bool:
    return True


def _records(api: FhirTestClient, path: str) -> tuple[str, list[tuple[str, str]], list[str]]:
    """Nine records to page, as ``path`` finds them: the type, the criteria and the ids."""
    if path == "by_patient":
        patient = _create(api, {"resourceType": "Patient", "name": [{"family": "Chan"}]})
        body = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "bp"},
            "subject": {"reference": f"Patient/{patient}"},
        }
        type_name, params = "Observation", [("patient", patient)]
    else:
        body = {"resourceType": "Patient", "name": [{"family": "Chan"}]}
        type_name, params = "Patient", [("name", "chan")]
    return type_name, params, [_create(api, body) for _ in range(9)]


Pager = Callable[[tuple[int, int, str] | None], tuple[list[str], SearchQuery, int]]


def _pager(
    services: Services, type_name: str, params: list[tuple[str, str]], path: str, count: int = 3
) -> Pager:
    """A page of the search after a cursor (None: the first), its query and total."""
    # A keep of a type that is not health data opens every candidate (in memory).
    keep: Callable[[Opened], bool] | None = _everyone if path == "in_memory" else None

    def page(after: tuple[int, int, str] | None) -> tuple[list[str], SearchQuery, int]:
        query = _query(services, type_name, params)
        query.after, query.count = after, count
        found, total = find(
            services.vault,
            query,
            principal="system:test",
            purpose="treatment",
            restrict=None,
            candidate_limit=1000,
            keep=keep,
        )
        return [item.head.resource_id for item in found], query, total

    return page


def _onwards(page: Pager, query: SearchQuery, *, total: int) -> tuple[list[str], list[int]]:
    """Every page after ``query``'s, by its cursors: the records and each page's offset."""
    seen: list[str] = []
    positions: list[int] = []
    while query.following is not None:
        shown, query, found = page(query.following)
        assert found == total
        positions.append(query.offset)
        seen += shown
    return seen, positions


@pytest.mark.parametrize("path", ["sql", "by_patient", "in_memory"])
def test_a_cursor_pages_after_the_last_record_shown(
    api: FhirTestClient, services: Services, path: str
) -> None:
    type_name, params, made = _records(api, path)
    page = _pager(services, type_name, params, path)
    seen, query, total = page(None)
    assert total == 9 and query.following is not None
    for record in seen[:2]:
        current = api.get(f"/fhir/{type_name}/{record}").json()
        current.pop("meta", None)  # the server's; ``{}`` is refused (R4 ele-1)
        changed = {**current, "id": record, "language": "en"}
        assert api.put_json(f"/fhir/{type_name}/{record}", changed).status_code == 200
    assert api.delete(f"/fhir/{type_name}/{seen[2]}").status_code in (200, 204)
    more, positions = _onwards(page, query, total=8)
    seen += more
    # The rest, then the two updated again; the offset counts what lies before.
    assert seen[3:9] == made[3:9] and sorted(seen[9:]) == sorted(made[:2])
    assert positions == [0, 3, 6, 8]  # the last, empty: nothing after the updated two


@pytest.mark.parametrize("path", ["sql", "by_patient", "in_memory"])
@pytest.mark.parametrize("sort", ["_id", "-_id", "-_lastUpdated", "_lastUpdated,-_id"])
def test_a_sorted_cursor_pages_after_the_last_record_shown_in_its_order(
    api: FhirTestClient, services: Services, path: str, sort: str
) -> None:
    """Stop 65: a search sorted by ``_id`` or ``_lastUpdated`` pages by a cursor in its
    own order (``_beyond`` over the sort's keys, then the default order's), in each of
    ``find``'s paths: what follows the last record shown, wherever records deleted
    before it since stood."""
    type_name, params, _ = _records(api, path)
    params = [*params, ("_sort", sort)]
    everything, _, _ = _pager(services, type_name, params, path, count=9)(None)
    page = _pager(services, type_name, params, path)
    seen, query, total = page(None)
    assert seen == everything[:3] and total == 9 and query.following is not None
    assert api.delete(f"/fhir/{type_name}/{seen[1]}").status_code in (200, 204)
    more, positions = _onwards(page, query, total=8)
    seen += more
    # Nothing passed over, nothing repeated: the rest, in the order they stood.
    assert seen[3:] == everything[3:] and positions == [2, 5, 8]
