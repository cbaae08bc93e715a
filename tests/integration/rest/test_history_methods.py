"""History says truthfully how each version was written (R4 http.html#history:
``request.method`` and ``request.url`` of each entry): POST for a create, PUT for an
update (and for an update that created the record), PATCH for a patch, DELETE for a
deletion; by every write path (REST, transaction Bundles, conditional interactions, bulk
import) and at every level. Versions written before records_0025 have their method
inferred. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import update

from carevault.bootstrap import Services
from carevault.vault.tables import resource_version
from tests.integration.bulk.test_import import run_import
from tests.integration.rest.test_interactions import create
from tests.support.client import FhirTestClient

JSON_PATCH = {"content-type": "application/json-patch+json"}
ID = "http://example.org/staff"


def practitioner(family: str, number: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Practitioner", "name": [{"family": family}]}
    if number is not None:
        body["identifier"] = [{"system": ID, "value": number}]
    return body


def methods(api: FhirTestClient, path: str) -> list[tuple[str, str]]:
    """(method, url) of each entry of a history, newest first."""
    response = api.get(f"{path}/_history")
    assert response.status_code == 200, response.text
    return [
        (entry["request"]["method"], entry["request"]["url"])
        for entry in response.json().get("entry", [])
    ]


def test_rest_writes_are_listed_by_the_method_that_made_each_version(
    api: FhirTestClient,
) -> None:
    made = create(api, practitioner("Osei"))
    path = f"/fhir/Practitioner/{made['id']}"
    assert api.put_json(path, {**made, "name": [{"family": "Ama"}]}).status_code == 200
    patched = api.patch(
        path,
        content=json.dumps([{"op": "add", "path": "/gender", "value": "female"}]),
        headers=JSON_PATCH,
    )
    assert patched.status_code == 200, patched.text
    assert api.delete(path).status_code == 204
    url = f"Practitioner/{made['id']}"
    assert methods(api, path) == [("DELETE", url), ("PATCH", url), ("PUT", url), ("POST", url)]
    # An update that creates (a client-chosen id) was a PUT, whatever its version.
    chosen = api.put_json("/fhir/Practitioner/dr-wong", {**practitioner("Wong"), "id": "dr-wong"})
    assert chosen.status_code == 201, chosen.text
    assert methods(api, "/fhir/Practitioner/dr-wong") == [("PUT", "Practitioner/dr-wong")]
    # The type level says the same of the same versions.
    typed = {
        (entry["request"]["url"], entry["response"]["etag"]): entry["request"]["method"]
        for entry in api.get("/fhir/Practitioner/_history").json()["entry"]
    }
    assert typed[(url, 'W/"3"')] == "PATCH"
    assert typed[("Practitioner/dr-wong", 'W/"1"')] == "PUT"


def test_conditional_writes_are_listed_by_their_own_methods(api: FhirTestClient) -> None:
    criteria = f"identifier={ID}|S-1"
    created = api.post_json(
        "/fhir/Practitioner", practitioner("Lee", "S-1"), **{"If-None-Exist": criteria}
    )
    assert created.status_code == 201, created.text
    path = f"/fhir/Practitioner/{created.json()['id']}"
    updated = api.put_json(f"/fhir/Practitioner?{criteria}", practitioner("Li", "S-1"))
    assert updated.status_code == 200, updated.text
    assert api.delete(f"/fhir/Practitioner?{criteria}").status_code == 204
    assert [method for method, _ in methods(api, path)] == ["DELETE", "PUT", "POST"]
    # A conditional update that matches nothing creates, by PUT.
    made = api.put_json(f"/fhir/Practitioner?identifier={ID}|S-2", practitioner("Ho", "S-2"))
    assert made.status_code == 201, made.text
    assert [method for method, _ in methods(api, f"/fhir/Practitioner/{made.json()['id']}")] == [
        "PUT"
    ]


def test_transaction_entries_are_listed_by_their_entry_methods(api: FhirTestClient) -> None:
    gone = create(api, practitioner("Yip"))
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": practitioner("Tam"), "request": {"method": "POST", "url": "Practitioner"}},
            {
                "resource": {**practitioner("Kwok"), "id": "dr-kwok"},
                "request": {"method": "PUT", "url": "Practitioner/dr-kwok"},
            },
            {"request": {"method": "DELETE", "url": f"Practitioner/{gone['id']}"}},
        ],
    }
    response = api.post_json("/fhir", bundle)
    assert response.status_code == 200, response.text
    posted = response.json()["entry"][0]["response"]["location"].split("/")[1]
    assert methods(api, f"/fhir/Practitioner/{posted}") == [("POST", f"Practitioner/{posted}")]
    assert methods(api, "/fhir/Practitioner/dr-kwok") == [("PUT", "Practitioner/dr-kwok")]
    assert [method for method, _ in methods(api, f"/fhir/Practitioner/{gone['id']}")] == [
        "DELETE",
        "POST",
    ]


def test_a_bulk_load_creates_by_post_and_replaces_by_put(
    services: Services, api: FhirTestClient, tmp_path: Path
) -> None:
    for n, family in enumerate(("Fung", "Fong")):
        source = tmp_path / f"part{n}" / "Practitioner.ndjson"
        source.parent.mkdir()
        body = {**practitioner(family), "id": "dr-fung"}
        source.write_text(json.dumps(body) + "\n")
        report = run_import(services, [source])
        assert report.accepted == 1 and report.rejected == 0
    assert methods(api, "/fhir/Practitioner/dr-fung") == [
        ("PUT", "Practitioner/dr-fung"),
        ("POST", "Practitioner/dr-fung"),
    ]


def test_versions_written_before_methods_were_stored_have_them_inferred(
    services: Services, api: FhirTestClient
) -> None:
    made = create(api, practitioner("Sze"))
    path = f"/fhir/Practitioner/{made['id']}"
    api.put_json(path, {**made, "name": [{"family": "Sze Ka"}]})
    api.delete(path)
    with services.vault.engine.begin() as connection:
        connection.execute(update(resource_version).values(method=None))
    assert [method for method, _ in methods(api, path)] == ["DELETE", "PUT", "POST"]


def statuses(api: FhirTestClient, path: str) -> list[tuple[str, str]]:
    """(method, response.status) of each entry of a history, newest first."""
    response = api.get(path)
    assert response.status_code == 200, response.text
    return [
        (entry["request"]["method"], entry["response"]["status"])
        for entry in response.json().get("entry", [])
    ]


def test_a_version_whose_write_created_the_record_says_201_at_every_level(
    api: FhirTestClient,
) -> None:
    """A history entry's response is the one the write answered: 201 for a version that
    created the record (version 1, by POST or by a PUT with a client-chosen id, and a PUT
    that brought a deleted record back, which R4's update answers 201 as a create), 200
    for an update or a patch, 204 for a deletion (R4 http.html#history: 200 or 204)."""
    chosen = api.put_json("/fhir/Practitioner/dr-lam", {**practitioner("Lam"), "id": "dr-lam"})
    assert chosen.status_code == 201, chosen.text
    path = "/fhir/Practitioner/dr-lam"
    assert api.put_json(path, {**chosen.json(), "gender": "male"}).status_code == 200
    assert api.delete(path).status_code == 204
    again = api.put_json(path, {**practitioner("Lam"), "id": "dr-lam"})
    assert again.status_code == 201, again.text
    assert api.put_json(path, {**again.json(), "gender": "female"}).status_code == 200
    expected = [
        ("PUT", "200 OK"),
        ("PUT", "201 Created"),
        ("DELETE", "204 No Content"),
        ("PUT", "200 OK"),
        ("PUT", "201 Created"),
    ]
    assert statuses(api, f"{path}/_history") == expected
    for level in ("/fhir/Practitioner/_history", "/fhir/_history"):
        found = api.get(level, params={"_count": "50"})
        assert found.status_code == 200, found.text
        mine = [
            (entry["request"]["method"], entry["response"]["status"])
            for entry in found.json()["entry"]
            if entry["fullUrl"].endswith("/Practitioner/dr-lam")
        ]
        assert mine == expected, level
    posted = create(api, practitioner("Chan"))
    assert statuses(api, f"/fhir/Practitioner/{posted['id']}/_history") == [("POST", "201 Created")]
