"""FHIR decimals come back exactly as sent (issues 14 and 15): ``72.50`` is not ``72.5``
and ``12345678901234567890.123`` is not a float. Checked on the raw response text of
every way a resource leaves, on the decrypted stored body, and through subsetting, on
SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller
from carevault.vault.tables import resource_version
from carevault.web.app import create_app
from tests.integration.rest.test_interactions import create, patient
from tests.support.client import FHIR_JSON, FhirTestClient
from tests.support.staff import make_staff

SENT = ["72.50", "12345678901234567890.123", "1.50", "0.0000001", "1.5e2", "-0.010"]
CLINIC = "clinic-decimal"


def _observation_text(patient_id: str) -> bytes:
    components = ",".join(
        f'{{"code":{{"text":"c{index}"}},"valueQuantity":{{"value":{value},"unit":"kg"}}}}'
        for index, value in enumerate(SENT[1:])
    )
    return (
        '{"resourceType":"Observation","status":"final","code":{"text":"weight"},'
        f'"subject":{{"reference":"Patient/{patient_id}"}},'
        '"effectiveDateTime":"2024-03-01",'
        f'"valueQuantity":{{"value":{SENT[0]},"unit":"kg"}},"component":[{components}]}}'
    ).encode()


def _assert_exact(text: str) -> None:
    for value in SENT:
        assert f'"value":{value},' in text.replace(" ", ""), value
    assert "e+19" not in text and "72.5," not in text


@pytest.fixture
def recorded(api: FhirTestClient) -> Iterator[tuple[str, str]]:
    someone = create(api, patient())
    response = api.post(
        "/fhir/Observation", content=_observation_text(someone["id"]), headers=FHIR_JSON
    )
    assert response.status_code == 201, response.text
    _assert_exact(response.text)
    yield someone["id"], response.json()["id"]


def test_every_way_out_keeps_the_decimals_as_sent(
    api: FhirTestClient, recorded: tuple[str, str]
) -> None:
    patient_id, observation_id = recorded
    for path in (
        f"/fhir/Observation/{observation_id}",
        f"/fhir/Observation/{observation_id}/_history/1",
        f"/fhir/Observation/{observation_id}/_history",
        f"/fhir/Observation?subject=Patient/{patient_id}",
        "/fhir/Observation?date=2024-03-01",
        f"/fhir/Patient/{patient_id}/$everything",
    ):
        response = api.get(path)
        assert response.status_code == 200, (path, response.text)
        _assert_exact(response.text)

    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": f"Observation/{observation_id}"}}],
    }
    _assert_exact(api.post_json("/fhir", bundle).text)


def test_an_update_and_a_transaction_store_what_was_sent(
    api: FhirTestClient, recorded: tuple[str, str]
) -> None:
    patient_id, observation_id = recorded
    text = (
        _observation_text(patient_id)
        .decode()
        .replace(
            '"resourceType":"Observation",',
            f'"resourceType":"Observation","id":"{observation_id}",',
        )
    )
    updated = api.put(f"/fhir/Observation/{observation_id}", content=text, headers=FHIR_JSON)
    assert updated.status_code == 200, updated.text
    _assert_exact(updated.text)

    entry = _observation_text(patient_id).decode()
    transaction = (
        '{"resourceType":"Bundle","type":"transaction","entry":['
        f'{{"request":{{"method":"POST","url":"Observation"}},"resource":{entry}}},'
        f'{{"request":{{"method":"GET","url":"Observation?subject=Patient/{patient_id}"}}}}]}}'
    )
    response = api.post("/fhir", content=transaction, headers=FHIR_JSON)
    assert response.status_code == 200, response.text
    _assert_exact(response.text)


def test_the_stored_body_holds_the_exact_text_and_only_as_ciphertext(
    api: FhirTestClient, services: Services, recorded: tuple[str, str]
) -> None:
    _, observation_id = recorded
    opened = services.gate.read(
        Caller(principal="system:test"), RESOURCE_TYPES["Observation"], observation_id
    )
    _assert_exact((opened.body or b"").decode())
    with services.engine.connect() as connection:
        sealed = connection.execute(
            resource_version.select().where(resource_version.c.resource_id == observation_id)
        ).first()
    assert sealed is not None
    assert b"12345678901234567890.123" not in bytes(sealed.sealed)


def test_a_subsetted_record_keeps_its_decimals(services: Services, api: FhirTestClient) -> None:
    """The front desk may not see the HKID: the record is cut, parsed and written again."""
    api.put_json(
        f"/fhir/Organization/{CLINIC}",
        {"resourceType": "Organization", "id": CLINIC, "name": "Decimal clinic"},
    )
    body = json.dumps(
        {
            **patient(),
            "managingOrganization": {"reference": f"Organization/{CLINIC}"},
            "extension": [{"url": "http://example.org/weight", "valueDecimal": "@"}],
        }
    ).replace('"@"', "72.50")
    created = api.post("/fhir/Patient", content=body, headers=FHIR_JSON)
    assert created.status_code == 201, created.text
    desk = make_staff(services, Role.FRONT_DESK, [CLINIC])
    with FhirTestClient(create_app(services.settings, services)) as web:
        response = web.get(f"/fhir/Patient/{created.json()['id']}", headers=desk.headers)
    assert response.status_code == 200, response.text
    assert "SUBSETTED" in response.text and "A123456" not in response.text
    assert '"valueDecimal":72.50' in response.text
