"""A read answers 304 when the client already holds the version (``If-None-Match``), and
406 when the client accepts no JSON, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from carevault.bootstrap import Services
from tests.integration.rest.test_interactions import create, patient
from tests.support.client import FhirTestClient


def _entries(services: Services) -> int:
    return int(services.audit_ledger.store.head()[0])


@pytest.fixture
def stored(api: FhirTestClient) -> dict[str, Any]:
    created = create(api, patient())
    changed = {**created, "gender": "female"}
    response = api.put_json(f"/fhir/Patient/{created['id']}", changed)
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.mark.parametrize("tag", ['W/"2"', '"2"', ' W/"1", W/"2" ', "*"])
def test_the_version_held_answers_304_with_no_body(
    api: FhirTestClient, services: Services, stored: dict[str, Any], tag: str
) -> None:
    before = _entries(services)
    response = api.get(f"/fhir/Patient/{stored['id']}", headers={"If-None-Match": tag})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == 'W/"2"'
    # The read went through the gate: it is in the ledger like any other read.
    assert _entries(services) > before


@pytest.mark.parametrize("tag", ['W/"1"', '"3"', "W/2"])
def test_another_version_is_answered_in_full(
    api: FhirTestClient, stored: dict[str, Any], tag: str
) -> None:
    response = api.get(f"/fhir/Patient/{stored['id']}", headers={"If-None-Match": tag})
    assert response.status_code == 200
    assert response.json()["gender"] == "female"
    assert response.headers["etag"] == 'W/"2"'


def test_a_missing_record_is_404_whatever_the_tag(api: FhirTestClient) -> None:
    response = api.get("/fhir/Patient/no-such-id", headers={"If-None-Match": "*"})
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({"Accept": "application/fhir+xml"}, ""),
        ({"Accept": "application/xml, text/html"}, ""),
        ({"Accept": "application/fhir+json;q=0"}, ""),
        ({}, "?_format=xml"),
        ({"Accept": "application/fhir+json"}, "?_format=application/fhir%2Bxml"),
    ],
)
def test_a_client_accepting_no_json_gets_406(
    api: FhirTestClient,
    services: Services,
    stored: dict[str, Any],
    headers: dict[str, str],
    query: str,
) -> None:
    before = _entries(services)
    response = api.get(f"/fhir/Patient/{stored['id']}{query}", headers=headers)
    assert response.status_code == 406
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert "JSON only" in body["issue"][0]["diagnostics"]
    # Refused before the gate: the record was not opened.
    assert _entries(services) == before


def test_406_for_searches_and_writes_too_changes_nothing(
    api: FhirTestClient, stored: dict[str, Any]
) -> None:
    xml = {"Accept": "application/fhir+xml"}
    assert api.get("/fhir/Patient?gender=female", headers=xml).status_code == 406
    refused = api.put_json(f"/fhir/Patient/{stored['id']}", {**stored, "gender": "male"}, **xml)
    assert refused.status_code == 406
    assert api.get(f"/fhir/Patient/{stored['id']}").json()["gender"] == "female"


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({}, ""),
        ({"Accept": "*/*"}, ""),
        ({"Accept": "application/json"}, ""),
        ({"Accept": "application/fhir+xml;q=0.9, application/fhir+json;q=0.5"}, ""),
        ({"Accept": "application/fhir+xml"}, "?_format=json"),
        ({}, "?_format=application/fhir%2Bjson"),
    ],
)
def test_json_among_the_choices_is_answered(
    api: FhirTestClient, stored: dict[str, Any], headers: dict[str, str], query: str
) -> None:
    response = api.get(f"/fhir/Patient/{stored['id']}{query}", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == stored["id"]
