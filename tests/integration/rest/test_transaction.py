"""Batch and transaction Bundles, with real-world Synthea bundles as input."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from carevault.bootstrap import Services
from tests.integration.rest.test_interactions import create, observation, patient
from tests.support.client import FhirTestClient
from tests.support.snapshot import snapshot
from tests.support.synthea import BUNDLES, SYNTHEA


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def test_the_vendored_synthea_fixtures_are_there_with_their_licence() -> None:
    assert [path.name.split("_")[0] for path in BUNDLES] == ["Alberto", "Antonio", "Bill"]
    assert "Apache License, Version 2.0" in (SYNTHEA / "LICENSE").read_text()


def post_transaction(api: FhirTestClient, bundle: dict[str, Any]) -> dict[str, str]:
    """Post a transaction; return each entry's fullUrl → the Type/id the server gave it."""
    response = api.post_json("/fhir", bundle)
    assert response.status_code == 200, response.text[:2000]
    reply = response.json()
    assert reply["type"] == "transaction-response"
    assert len(reply["entry"]) == len(bundle["entry"])
    assigned: dict[str, str] = {}
    for sent, answered in zip(bundle["entry"], reply["entry"], strict=True):
        assert answered["response"]["status"] == "201 Created"
        location = answered["response"]["location"]
        assigned[sent["fullUrl"]] = "/".join(location.split("/")[:2])
    return assigned


@pytest.mark.slow
def test_every_synthea_bundle_posts_as_one_transaction_and_everything_returns_it(
    api: FhirTestClient,
) -> None:
    for path in BUNDLES:
        bundle = load(path)
        assigned = post_transaction(api, bundle)
        patient_ref = next(ref for ref in assigned.values() if ref.startswith("Patient/"))
        everything = api.get(f"/fhir/{patient_ref}/$everything").json()
        returned = {
            f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in everything["entry"]
        }
        assert returned == set(assigned.values()), path.name
        # references now point at the server's ids, never at urn:uuid:
        assert "urn:uuid:" not in json.dumps(everything)
        types = Counter(e["resource"]["resourceType"] for e in everything["entry"])
        assert types == Counter(e["resource"]["resourceType"] for e in bundle["entry"])


def test_a_synthea_resource_reads_back_as_it_was_sent(api: FhirTestClient) -> None:
    bundle = load(BUNDLES[0])
    assigned = post_transaction(api, bundle)
    sent = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "Condition")
    served = api.get(f"/fhir/{assigned[sent['fullUrl']]}").json()
    expected = copy.deepcopy(sent["resource"])
    expected["subject"]["reference"] = assigned[expected["subject"]["reference"]]
    expected["encounter"]["reference"] = assigned[expected["encounter"]["reference"]]
    for ignored in ("id", "meta"):
        served.pop(ignored)
        expected.pop(ignored)
    assert served == expected


def test_transaction_with_one_invalid_entry_fails_whole_and_leaves_nothing(
    api: FhirTestClient, services: Services
) -> None:
    bundle = load(BUNDLES[1])
    bad_index = next(
        i for i, e in enumerate(bundle["entry"]) if e["resource"]["resourceType"] == "Observation"
    )
    bundle["entry"][bad_index]["resource"]["status"] = "probably"
    before = snapshot(services)
    response = api.post_json("/fhir", bundle)
    assert response.status_code == 400
    issue = response.json()["issue"][0]
    assert f"Bundle.entry[{bad_index}]" in issue["diagnostics"]
    assert snapshot(services) == before


def test_transaction_that_fails_while_writing_rolls_back_every_entry(
    api: FhirTestClient, services: Services
) -> None:
    someone = create(api, patient())
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:11111111-1111-4111-8111-111111111111",
                "resource": patient("Ho", "Wing", "C123456(9)"),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {**someone, "gender": "female"},
                "request": {"method": "PUT", "url": f"Patient/{someone['id']}", "ifMatch": 'W/"9"'},
            },
        ],
    }
    before = snapshot(services)
    response = api.post_json("/fhir", bundle)
    assert response.status_code == 412
    assert snapshot(services) == before


def test_transaction_rejects_a_urn_reference_to_nothing(
    api: FhirTestClient, services: Services
) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:22222222-2222-4222-8222-222222222222",
                "resource": {
                    **observation("x", "2024-01-01"),
                    "subject": {"reference": "urn:uuid:33333333-3333-4333-8333-333333333333"},
                },
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    before = snapshot(services)
    response = api.post_json("/fhir", bundle)
    assert response.status_code == 400
    assert snapshot(services) == before


def test_transaction_mixes_put_delete_get_and_answers_in_request_order(api: FhirTestClient) -> None:
    someone = create(api, patient())
    doomed = create(api, observation(someone["id"], "2024-01-01"))
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "GET", "url": f"Patient/{someone['id']}"}},
            {
                "fullUrl": "urn:uuid:44444444-4444-4444-8444-444444444444",
                "resource": observation(someone["id"], "2024-02-02"),
                "request": {"method": "POST", "url": "Observation"},
            },
            {"request": {"method": "DELETE", "url": f"Observation/{doomed['id']}"}},
            {
                "resource": {**someone, "gender": "female"},
                "request": {"method": "PUT", "url": f"Patient/{someone['id']}", "ifMatch": 'W/"1"'},
            },
        ],
    }
    reply = api.post_json("/fhir", bundle).json()
    statuses = [entry["response"]["status"] for entry in reply["entry"]]
    assert statuses == ["200 OK", "201 Created", "204 No Content", "200 OK"]
    # GET runs after the writes, so it sees the updated patient.
    assert reply["entry"][0]["resource"]["gender"] == "female"
    assert api.get(f"/fhir/Observation/{doomed['id']}").status_code == 410


def test_conditional_create_in_a_transaction_reuses_the_existing_resource(
    api: FhirTestClient,
) -> None:
    someone = create(api, patient())
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:55555555-5555-4555-8555-555555555555",
                "resource": patient(),
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": "identifier=A123456(3)",
                },
            },
            {
                "fullUrl": "urn:uuid:66666666-6666-4666-8666-666666666666",
                "resource": {
                    **observation("x", "2024-01-01"),
                    "subject": {"reference": "urn:uuid:55555555-5555-4555-8555-555555555555"},
                },
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    reply = api.post_json("/fhir", bundle).json()
    assert reply["entry"][0]["response"]["status"] == "200 OK"
    assert reply["entry"][0]["response"]["location"] == f"Patient/{someone['id']}/_history/1"
    found = api.get(f"/fhir/Observation?patient={someone['id']}").json()
    assert found["total"] == 1
    assert api.get("/fhir/Patient").json()["total"] == 1


def test_batch_answers_each_entry_on_its_own(api: FhirTestClient) -> None:
    someone = create(api, patient())
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": observation(someone["id"], "2024-01-01"),
                "request": {"method": "POST", "url": "Observation"},
            },
            {
                "resource": {"resourceType": "Observation", "status": "final"},
                "request": {"method": "POST", "url": "Observation"},
            },
            {"request": {"method": "GET", "url": "Patient/nobody"}},
            {"request": {"method": "GET", "url": f"Patient?_id={someone['id']}"}},
        ],
    }
    reply = api.post_json("/fhir", bundle).json()
    assert reply["type"] == "batch-response"
    statuses = [entry["response"]["status"] for entry in reply["entry"]]
    assert statuses == ["201 Created", "400", "404", "200 OK"]
    assert reply["entry"][1]["response"]["outcome"]["issue"][0]["code"] == "required"
    assert reply["entry"][3]["resource"]["total"] == 1
    assert api.get(f"/fhir/Observation?patient={someone['id']}").json()["total"] == 1
