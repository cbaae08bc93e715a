"""Paging ``Patient/$everything`` by a sealed cursor, on SQLite and PostgreSQL (stop 65).

Its pages were positions (``_offset=k``) in an order by type: a record of the chart
updated or deleted on a page passed moved the later ones by one, so one was passed over
or one listed twice; a record written while the client paged, of a type already passed,
was never listed. The next link now carries a cursor: the patient first, then every
record where it was last written, and a page holds what follows the last one shown."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.rest.test_interactions import (
    create,
    cursor_of,
    followed,
    observation,
    patient,
    refused_all,
)
from tests.support.client import FhirTestClient


def _condition(patient_id: str, code: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": code}]},
        "subject": {"reference": f"Patient/{patient_id}"},
    }


def _matches(bundle: dict[str, Any]) -> list[str]:
    return [
        f"{entry['resource']['resourceType']}/{entry['resource']['id']}"
        for entry in bundle.get("entry", [])
        if entry["search"]["mode"] == "match"
    ]


def _next(bundle: dict[str, Any]) -> str | None:
    url = {link["relation"]: link["url"] for link in bundle["link"]}.get("next")
    return None if url is None else url[url.index("/fhir") :]


def _chart(api: FhirTestClient) -> tuple[str, list[str]]:
    someone = create(api, patient())["id"]
    made = [f"Patient/{someone}"]
    for i in range(6):
        made.append(f"Observation/{create(api, observation(someone, f'2024-01-1{i}'))['id']}")
        made.append(f"Condition/{create(api, _condition(someone, f'3838{i}'))['id']}")
    return someone, made


@pytest.mark.parametrize("narrowed", ["", "start=2024-01-01&"], ids=["plain", "care-dates"])
def test_everything_pages_miss_nothing_written_or_deleted_on_pages_passed(
    api: FhirTestClient, narrowed: str
) -> None:
    """Both of the gate's paths: by clear metadata, and with care dates (every record
    opened and judged, then paged)."""
    someone, made = _chart(api)
    first = api.get(f"/fhir/Patient/{someone}/$everything?{narrowed}_count=4").json()
    seen = _matches(first)
    assert seen[0] == f"Patient/{someone}" and first["total"] == 13
    updated = seen[1:3]
    for reference in updated:
        record = api.get(f"/fhir/{reference}").json()
        changed = {**record, "language": "en"}
        assert api.put_json(f"/fhir/{reference}", changed).status_code == 200
    gone = seen[3]
    assert api.delete(f"/fhir/{gone}").status_code in (200, 204)
    # A diagnosis recorded while the client pages, of a type it may have passed.
    late = f"Condition/{create(api, _condition(someone, '44054006'))['id']}"
    url, cursors = _next(first), []
    while url:
        cursors.append(cursor_of(url))
        bundle = api.get(url).json()
        assert bundle["total"] == 13
        page = _matches(bundle)
        # Never one already shown, unchanged.
        assert not set(page) & (set(seen[:4]) - set(updated)), page
        seen += page
        url = _next(bundle)
    assert set(made) - {gone} | {late} <= set(seen)
    assert cursors and not any(cursor.isdigit() for cursor in cursors)
    # The two updated come again at the end, in the order written, then the new one.
    assert sorted(seen[-3:-1]) == sorted(updated) and seen[-1] == late
    assert len(seen) == 4 + 9 + 1 + 2


def test_an_everything_cursor_is_the_callers_for_its_patient_and_criteria(
    api: FhirTestClient,
) -> None:
    from carevault.gate import Caller
    from carevault.web.security import caller

    someone, _ = _chart(api)
    other = create(api, patient(family="Wong", hkid="B123456(6)"))["id"]
    path = f"/fhir/Patient/{someone}/$everything"
    url = _next(api.get(f"{path}?_count=3").json())
    assert url is not None
    cursor = cursor_of(url)
    second = followed(api, url, 3)
    assert second["total"] == 13 and len(_matches(second)) == 3
    altered = cursor[:-2] + ("AB" if cursor[-2:] != "AB" else "CD")
    refused_all(
        api,
        f"/fhir/Patient/{other}/$everything?_count=3&_offset={cursor}",
        f"{path}?_type=Observation&_count=3&_offset={cursor}",
        f"{path}?_since=2020-01-01&_count=3&_offset={cursor}",
        f"{path}?_count=3&_offset={altered}",
        f"/fhir/Patient?_count=3&_offset={cursor}",
    )
    # A position of the client's own still answers a first page, as before.
    assert len(_matches(api.get(f"{path}?_count=3&_offset=3").json())) == 3
    api.app.dependency_overrides[caller] = lambda: Caller(principal="system:another")
    assert api.get(url).status_code == 400
