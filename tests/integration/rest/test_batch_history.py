"""A batch's ``GET`` entries for history, at every level (R4 http.html#transaction: a
batch carries any read interaction). ``GET [type]/[id]/_history`` answered 400 "GET
entries support read, vread and search" (adversary round 79's note); type and system
history were taken for a search of a type named ``_history`` or a read of the id
``_history``. Each entry now answers what its route answers, to the same caller: the
same versions, the same refusal (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from tests.integration.access.group import Group, build_group
from tests.support.staff import Staff

pytestmark = pytest.mark.postgres


@pytest.fixture
def group(services: Services, api: Any) -> Iterator[Group]:
    yield from build_group(services, api)


def _batch(group: Group, who: Staff, *urls: str) -> list[dict[str, Any]]:
    body = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": url}} for url in urls],
    }
    answer = group.call(who, "POST", "/fhir", body)
    assert answer.status_code == 200, answer.text
    entries: list[dict[str, Any]] = answer.json()["entry"]
    return entries


def _versions(bundle: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (entry["resource"]["id"], entry["resource"]["meta"]["versionId"])
        for entry in bundle.get("entry", [])
        if "resource" in entry
    ]


def test_a_batch_reads_a_records_history_as_its_route_does(group: Group) -> None:
    patient = group.tm_patient.id
    path = f"Patient/{patient}/_history"
    own = group.call(group.doctor_tm, "GET", f"/fhir/{path}")
    assert own.status_code == 200, own.text

    [entry] = _batch(group, group.doctor_tm, path)

    assert entry["response"]["status"].startswith("200")
    assert entry["resource"]["resourceType"] == "Bundle"
    assert entry["resource"]["type"] == "history"
    assert entry["resource"]["total"] == own.json()["total"] == 1
    assert _versions(entry["resource"]) == _versions(own.json()) == [(patient, "1")]


def test_a_batch_reads_type_and_system_history_as_their_routes_do(group: Group) -> None:
    kinds = ("Observation/_history", "_history")
    routes = [group.call(group.doctor_tm, "GET", f"/fhir/{path}") for path in kinds]

    entries = _batch(group, group.doctor_tm, *kinds)

    for entry, route in zip(entries, routes, strict=True):
        assert route.status_code == 200, route.text
        assert entry["response"]["status"].startswith("200")
        assert entry["resource"]["type"] == "history"
        assert sorted(_versions(entry["resource"])) == sorted(_versions(route.json()))
    assert (group.tm_patient.observation, "1") in _versions(entries[0]["resource"])
    assert (group.tw_patient.observation, "1") not in _versions(entries[1]["resource"])


def test_a_batch_history_of_another_clinics_record_is_refused_as_its_route_is(
    group: Group,
) -> None:
    path = f"Observation/{group.tw_patient.observation}/_history"
    route = group.call(group.doctor_tm, "GET", f"/fhir/{path}")

    [entry] = _batch(group, group.doctor_tm, path)

    assert route.status_code == 403
    assert entry["response"]["status"].startswith("403")
    assert "resource" not in entry or entry["resource"]["resourceType"] != "Bundle"
