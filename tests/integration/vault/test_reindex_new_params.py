"""Records stored before a version indexed Encounter ``class``, Condition ``category``,
``onset-date`` and ``recorded-date``, MedicationRequest ``intent`` and ServiceRequest
``authored`` and ``occurrence`` hold no terms for them: a search by them
misses such records until ``carevault reindex`` derives the terms. SQLite and
PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete

from carevault.bootstrap import Services
from carevault.fhir.indexing import param_terms
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.vault.tables import search_token
from tests.support.client import FhirTestClient

pytestmark = pytest.mark.postgres

NEW = (
    ("Encounter", "class", "AMB"),
    ("Condition", "category", "problem-list-item"),
    ("Condition", "onset-date", "2026-03"),
    ("MedicationRequest", "intent", "order"),
    ("Condition", "recorded-date", "2026-03-05"),
    ("ServiceRequest", "authored", "2026-02"),
    ("ServiceRequest", "occurrence", "2026-04-01"),
)


def _write(api: FhirTestClient) -> dict[str, str]:
    patient = api.post_json("/fhir/Patient", {"resourceType": "Patient"}).json()["id"]
    subject = {"reference": f"Patient/{patient}"}
    bodies: list[dict[str, Any]] = [
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": subject,
        },
        {
            "resourceType": "Condition",
            "subject": subject,
            "category": [{"coding": [{"code": "problem-list-item"}]}],
            "onsetDateTime": "2026-03-02",
            "recordedDate": "2026-03-05",
        },
        {
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "subject": subject,
            "authoredOn": "2026-02-20",
            "occurrenceDateTime": "2026-04-01T09:00:00+08:00",
        },
        {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "subject": subject,
            "medicationCodeableConcept": {"text": "paracetamol"},
        },
    ]
    ids = {}
    for body in bodies:
        response = api.post_json(f"/fhir/{body['resourceType']}", body)
        assert response.status_code == 201, response.text
        ids[body["resourceType"]] = response.json()["id"]
    return ids


def _forget_new_terms(services: Services, api: FhirTestClient, ids: dict[str, str]) -> None:
    """Remove the new parameters' tokens, as a version that did not index them left them."""
    vault = services.vault
    tokens: list[bytes] = []
    for type_name, name, _ in NEW:
        resource = api.get(f"/fhir/{type_name}/{ids[type_name]}").json()
        param = RESOURCE_TYPES[type_name].param(name)
        assert param is not None
        terms = param_terms(param, resource, vault.zone)
        assert terms, (type_name, name, resource)
        tokens += [vault.token(type_name, name, term) for term in terms]
    with vault.engine.begin() as connection:
        connection.execute(delete(search_token).where(search_token.c.token.in_(tokens)))


def test_records_stored_before_are_found_by_the_new_parameters_after_a_reindex(
    services: Services, api: FhirTestClient
) -> None:
    ids = _write(api)

    def found() -> dict[tuple[str, str], bool]:
        answers = {}
        for type_name, name, value in NEW:
            bundle = api.get(f"/fhir/{type_name}", params={name: value}).json()
            hits = {entry["resource"]["id"] for entry in bundle.get("entry", [])}
            answers[(type_name, name)] = ids[type_name] in hits
        return answers

    assert all(found().values())
    _forget_new_terms(services, api, ids)
    assert not any(found().values())
    assert services.gate.reindex("cli:operator", batch=2) == 5
    assert all(found().values())
