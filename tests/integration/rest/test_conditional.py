"""Conditional update, patch and delete on [type]?criteria (FHIR R4 http.html#cond-update,
#cond-delete), end to end through the app, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest

from carevault.bootstrap import Services
from carevault.ledger.events import Tag
from tests.integration.rest.test_interactions import HKID_SYSTEM, create, patient
from tests.integration.rest.test_patch import JSON_PATCH, events, send_patch
from tests.support.client import FhirTestClient


def by_hkid(hkid: str) -> str:
    return f"identifier={HKID_SYSTEM}|{hkid}"


def test_no_match_creates_and_one_match_updates_it(api: FhirTestClient, services: Services) -> None:
    url = f"/fhir/Patient?{by_hkid('R555555(7)')}"

    first = api.put_json(url, patient("Ho", "Ka Ming", "R555555(7)"))

    assert first.status_code == 201, first.text
    created = first.json()
    assert created["meta"]["versionId"] == "1"
    assert first.headers["location"].endswith(f"/Patient/{created['id']}/_history/1")

    second = api.put_json(url, {**patient("Ho", "Ka Ming", "R555555(7)"), "gender": "female"})

    assert second.status_code == 200, second.text
    assert second.json()["id"] == created["id"]
    assert second.json()["meta"]["versionId"] == "2"
    assert api.get(f"/fhir/Patient/{created['id']}").json()["gender"] == "female"
    # Each step is in the ledger: the gated search that resolved the criteria, the write.
    searches = [e for e in events(services, Tag.FHIR_SEARCH) if "identifier" in e.detail["params"]]
    assert len(searches) == 2
    assert [e.resource_id for e in events(services, Tag.FHIR_UPDATE)] == [created["id"]]


def test_an_id_in_the_body_must_be_the_matched_one(api: FhirTestClient) -> None:
    created = create(api, patient())
    url = f"/fhir/Patient?{by_hkid('A123456(3)')}"

    same = api.put_json(url, {**patient(), "id": created["id"], "gender": "other"})
    assert same.status_code == 200, same.text

    other = api.put_json(url, {**patient(), "id": "someone-else"})
    assert other.status_code == 400
    assert api.get(f"/fhir/Patient/{created['id']}").json()["meta"]["versionId"] == "2"

    nothing = api.put_json(
        f"/fhir/Patient?{by_hkid('Z000000(1)')}", {**patient(hkid="Z000000(1)"), "id": "mine"}
    )
    assert nothing.status_code == 400
    assert api.get("/fhir/Patient/mine").status_code == 404


def test_two_matches_answer_412_and_change_nothing(api: FhirTestClient) -> None:
    one = create(api, patient("Chan"))
    two = create(api, patient("Chan", hkid="B234567(1)"))

    updated = api.put_json("/fhir/Patient?family=Chan", {**patient(), "gender": "female"})
    patched = send_patch(
        api, "/fhir/Patient?family=Chan", [{"op": "replace", "path": "/gender", "value": "other"}]
    )
    deleted = api.delete("/fhir/Patient?family=Chan")

    for response in (updated, patched, deleted):
        assert response.status_code == 412, response.text
        assert response.json()["issue"][0]["code"] == "multiple-matches"
    for record in (one, two):
        assert api.get(f"/fhir/Patient/{record['id']}").json() == record


def test_if_match_applies_to_the_matched_resource(api: FhirTestClient) -> None:
    created = create(api, patient())
    url = f"/fhir/Patient?{by_hkid('A123456(3)')}"

    stale = api.put_json(url, {**patient(), "gender": "female"}, **{"If-Match": 'W/"7"'})
    assert stale.status_code == 412
    current = api.put_json(url, {**patient(), "gender": "female"}, **{"If-Match": 'W/"1"'})
    assert current.status_code == 200
    nothing = api.put_json(
        f"/fhir/Patient?{by_hkid('Z000000(1)')}",
        patient(hkid="Z000000(1)"),
        **{"If-Match": 'W/"1"'},
    )
    assert nothing.status_code == 412
    assert api.get(f"/fhir/Patient?{by_hkid('Z000000(1)')}").json()["total"] == 0
    assert api.get(f"/fhir/Patient/{created['id']}").json()["meta"]["versionId"] == "2"


@pytest.mark.parametrize(
    "query",
    ["", "_count=1", "_sort=family", "no-such-param=1", "identifier:fuzzy=x", "_elements=name"],
)
def test_criteria_must_be_search_parameters_that_filter(api: FhirTestClient, query: str) -> None:
    created = create(api, patient())

    update = api.put_json(f"/fhir/Patient?{query}", {**patient(), "gender": "female"})
    delete = api.delete(f"/fhir/Patient?{query}")

    assert update.status_code == 400, update.text
    assert delete.status_code == 400, delete.text
    assert api.get(f"/fhir/Patient/{created['id']}").json() == created


def test_conditional_patch_patches_the_one_match(api: FhirTestClient) -> None:
    created = create(api, patient())

    response = send_patch(
        api,
        f"/fhir/Patient?{by_hkid('A123456(3)')}",
        [{"op": "replace", "path": "/gender", "value": "female"}],
        {**JSON_PATCH, "If-Match": 'W/"1"'},
    )

    assert response.status_code == 200, response.text
    assert response.json()["id"] == created["id"]
    assert response.json()["gender"] == "female"
    missing = send_patch(
        api,
        f"/fhir/Patient?{by_hkid('Z000000(1)')}",
        [{"op": "replace", "path": "/gender", "value": "female"}],
    )
    assert missing.status_code == 404


def test_conditional_delete_deletes_the_one_match(api: FhirTestClient) -> None:
    created = create(api, patient())
    url = f"/fhir/Patient?{by_hkid('A123456(3)')}"

    response = api.delete(url)

    assert response.status_code == 204
    assert response.headers["etag"] == 'W/"2"'
    assert api.get(f"/fhir/Patient/{created['id']}").status_code == 410
    assert api.delete(url).status_code == 204  # nothing matches now: nothing to do


def test_a_conditional_update_body_is_validated_before_anything_is_searched(
    api: FhirTestClient, services: Services
) -> None:
    before = len(events(services, Tag.FHIR_SEARCH))
    response = api.put(
        f"/fhir/Patient?{by_hkid('A123456(3)')}",
        content=json.dumps({"resourceType": "Patient", "gender": "robot"}).encode(),
        headers={"content-type": "application/fhir+json"},
    )
    assert response.status_code == 400
    assert len(events(services, Tag.FHIR_SEARCH)) == before
