"""A batch or transaction entry's ``request.ifNoneMatch`` and ``ifMatch`` answer as the
same headers on the request sent on its own (FHIR R4 http.html#transaction: the entry's
request carries them "as for the HTTP header"); ``ifModifiedSince``:
``test_if_modified_since.py``. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest

from carevault.bootstrap import Services
from tests.integration.rest.test_interactions import create, observation, patient
from tests.support.client import FhirTestClient


def _entries(services: Services) -> int:
    return int(services.audit_ledger.store.head()[0])


@pytest.fixture
def stored(api: FhirTestClient) -> dict[str, Any]:
    """A patient at version 2."""
    created = create(api, patient())
    response = api.put_json(f"/fhir/Patient/{created['id']}", {**created, "gender": "female"})
    assert response.status_code == 200, response.text
    return dict(response.json())


def one_get(kind: str, url: str, **conditions: str) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [{"request": {"method": "GET", "url": url, **conditions}}],
    }


TAGS = ['W/"2"', '"2"', ' W/"1", W/"2" ', "*", 'W/"1"', '"3"', "W/2"]


@pytest.mark.parametrize("kind", ["batch", "transaction"])
@pytest.mark.parametrize("tag", TAGS)
def test_if_none_match_answers_304_exactly_when_the_plain_read_does(
    api: FhirTestClient, services: Services, stored: dict[str, Any], kind: str, tag: str
) -> None:
    url = f"Patient/{stored['id']}"
    plain = api.get(f"/fhir/{url}", headers={"If-None-Match": tag})
    before = _entries(services)

    reply = api.post_json("/fhir", one_get(kind, url, ifNoneMatch=tag))

    assert reply.status_code == 200, reply.text
    [entry] = reply.json()["entry"]
    if plain.status_code == 304:
        assert entry == {"response": {"status": "304 Not Modified", "etag": 'W/"2"'}}
    else:
        assert plain.status_code == 200
        assert entry["response"]["status"] == "200 OK"
        assert entry["resource"] == plain.json()
    # The read went through the gate either way: it is in the ledger like any other read.
    assert _entries(services) > before


def test_if_none_match_on_a_missing_record_is_its_404(api: FhirTestClient) -> None:
    reply = api.post_json("/fhir", one_get("batch", "Patient/no-such-id", ifNoneMatch="*"))

    [entry] = reply.json()["entry"]
    assert entry["response"]["status"] == "404"
    assert api.get("/fhir/Patient/no-such-id", headers={"If-None-Match": "*"}).status_code == 404


def test_if_none_match_is_weighed_by_an_entry_as_its_route_weighs_it(
    api: FhirTestClient, stored: dict[str, Any]
) -> None:
    """A search does not answer 304 on its own (it has no ETag), nor does its entry; a
    vread does (integrator round 59), and so does its entry."""
    versioned = f"Patient/{stored['id']}/_history/2"
    assert api.get(f"/fhir/{versioned}", headers={"If-None-Match": "*"}).status_code == 304
    bundle = one_get("batch", versioned, ifNoneMatch="*")
    bundle["entry"].append(
        {"request": {"method": "GET", "url": f"Patient?_id={stored['id']}", "ifNoneMatch": "*"}}
    )

    statuses = [e["response"]["status"] for e in api.post_json("/fhir", bundle).json()["entry"]]

    assert statuses == ["304 Not Modified", "200 OK"]


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_a_batch_entrys_if_match_on_another_version_is_412_as_the_header_is(
    api: FhirTestClient, stored: dict[str, Any], method: str
) -> None:
    url = f"Patient/{stored['id']}"
    body = {**stored, "gender": "male"}
    alone = api.request(
        method,
        f"/fhir/{url}",
        content=None if method == "DELETE" else json.dumps(body),
        headers={"If-Match": 'W/"1"', "content-type": "application/fhir+json"},
    )
    entry: dict[str, Any] = {"request": {"method": method, "url": url, "ifMatch": 'W/"1"'}}
    if method == "PUT":
        entry["resource"] = body

    reply = api.post_json("/fhir", {"resourceType": "Bundle", "type": "batch", "entry": [entry]})

    assert alone.status_code == 412
    [answered] = reply.json()["entry"]
    assert answered["response"]["status"] == "412"
    assert answered["response"]["outcome"]["resourceType"] == "OperationOutcome"
    current = api.get(f"/fhir/{url}").json()
    assert current["gender"] == "female" and current["meta"]["versionId"] == "2"


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_a_batch_entrys_if_match_on_the_current_version_writes(
    api: FhirTestClient, stored: dict[str, Any], method: str
) -> None:
    url = f"Patient/{stored['id']}"
    entry: dict[str, Any] = {"request": {"method": method, "url": url, "ifMatch": 'W/"2"'}}
    if method == "PUT":
        entry["resource"] = {**stored, "gender": "male"}

    reply = api.post_json("/fhir", {"resourceType": "Bundle", "type": "batch", "entry": [entry]})

    [answered] = reply.json()["entry"]
    assert answered["response"]["status"] == ("200 OK" if method == "PUT" else "204 No Content")
    assert answered["response"]["etag"] == 'W/"3"'


def test_a_transaction_deletes_nothing_when_one_if_match_is_stale(
    api: FhirTestClient, services: Services, stored: dict[str, Any]
) -> None:
    reading = create(api, observation(stored["id"], "2024-01-01"))
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "DELETE", "url": f"Observation/{reading['id']}"}},
            {
                "request": {
                    "method": "DELETE",
                    "url": f"Patient/{stored['id']}",
                    "ifMatch": 'W/"1"',
                }
            },
        ],
    }

    reply = api.post_json("/fhir", bundle)

    assert reply.status_code == 412, reply.text
    assert api.get(f"/fhir/Observation/{reading['id']}").status_code == 200
    assert api.get(f"/fhir/Patient/{stored['id']}").status_code == 200
