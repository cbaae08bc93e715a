"""Ciphertexts are bound to their rows: moved or altered, they fail with a clear integrity error."""

from __future__ import annotations

import json

from sqlalchemy import select, update

from carevault.bootstrap import Services
from carevault.keys.tables import data_key
from carevault.vault.tables import resource_version
from tests.integration.rest.test_interactions import create, observation, patient
from tests.support.client import FhirTestClient


def sealed_of(services: Services, resource_type: str, resource_id: str, version: int = 1) -> bytes:
    with services.engine.connect() as connection:
        value = connection.execute(
            select(resource_version.c.sealed).where(
                resource_version.c.resource_type == resource_type,
                resource_version.c.resource_id == resource_id,
                resource_version.c.version_id == version,
            )
        ).scalar_one()
    assert isinstance(value, bytes)
    return value


def put_sealed(
    services: Services, resource_type: str, resource_id: str, sealed: bytes, version: int = 1
) -> None:
    with services.engine.begin() as connection:
        connection.execute(
            update(resource_version)
            .where(
                resource_version.c.resource_type == resource_type,
                resource_version.c.resource_id == resource_id,
                resource_version.c.version_id == version,
            )
            .values(sealed=sealed)
        )


def assert_integrity_error(response: object, reference: str) -> None:
    assert response.status_code == 500  # type: ignore[attr-defined]
    issue = response.json()["issue"][0]  # type: ignore[attr-defined]
    assert issue["code"] == "security"
    assert reference in issue["diagnostics"] and "integrity" in issue["diagnostics"]


def test_ciphertext_copied_onto_another_patients_row_fails_to_decrypt(
    api: FhirTestClient, services: Services
) -> None:
    chan = create(api, patient())
    wong = create(api, patient("Wong", "Ka Yan", "Z683365(A)"))
    put_sealed(services, "Patient", wong["id"], sealed_of(services, "Patient", chan["id"]))
    response = api.get(f"/fhir/Patient/{wong['id']}")
    assert_integrity_error(response, f"Patient/{wong['id']}")
    assert "Chan" not in response.text


def test_ciphertext_of_the_same_patient_moved_to_another_resource_fails(
    api: FhirTestClient, services: Services
) -> None:
    someone = create(api, patient())
    first = create(api, observation(someone["id"], "2024-01-01", value=120))
    second = create(api, observation(someone["id"], "2024-02-01", value=180))
    put_sealed(
        services, "Observation", second["id"], sealed_of(services, "Observation", first["id"])
    )
    assert_integrity_error(
        api.get(f"/fhir/Observation/{second['id']}"), f"Observation/{second['id']}"
    )
    search = api.get(f"/fhir/Observation?patient={someone['id']}")
    assert search.status_code == 500


def test_old_version_replayed_as_the_current_one_fails(
    api: FhirTestClient, services: Services
) -> None:
    someone = create(api, patient())
    api.put_json(f"/fhir/Patient/{someone['id']}", {**someone, "gender": "female"})
    put_sealed(services, "Patient", someone["id"], sealed_of(services, "Patient", someone["id"]), 2)
    assert_integrity_error(api.get(f"/fhir/Patient/{someone['id']}"), f"Patient/{someone['id']}")


def test_a_flipped_bit_fails(api: FhirTestClient, services: Services) -> None:
    someone = create(api, patient())
    sealed = bytearray(sealed_of(services, "Patient", someone["id"]))
    sealed[len(sealed) // 2] ^= 0x01
    put_sealed(services, "Patient", someone["id"], bytes(sealed))
    assert_integrity_error(api.get(f"/fhir/Patient/{someone['id']}"), f"Patient/{someone['id']}")


def test_wrapped_keys_swapped_between_patients_do_not_unwrap(
    api: FhirTestClient, services: Services
) -> None:
    chan = create(api, patient())
    wong = create(api, patient("Wong", "Ka Yan", "Z683365(A)"))
    assert services.keys is not None
    with services.key_engine.begin() as connection:
        keys = dict(
            connection.execute(
                select(data_key.c.key_id, data_key.c.wrapped).where(data_key.c.kind == "patient")
            ).all()
        )
        first, second = list(keys)
        connection.execute(
            update(data_key).where(data_key.c.key_id == first).values(wrapped=keys[second])
        )
        connection.execute(
            update(data_key).where(data_key.c.key_id == second).values(wrapped=keys[first])
        )
    services.keys.forget_cached()
    for someone in (chan, wong):
        response = api.get(f"/fhir/Patient/{someone['id']}")
        assert response.status_code == 500
        assert response.json()["issue"][0]["code"] == "security"


def test_every_unwrap_is_logged_with_principal_pseudonym_and_purpose(
    api: FhirTestClient, services: Services
) -> None:
    someone = create(api, patient())
    assert services.keys is not None
    services.keys.forget_cached()
    api.get(f"/fhir/Patient/{someone['id']}")
    api.get(f"/fhir/Patient/{someone['id']}")  # served from the short-lived cache
    services.keys.forget_cached()
    api.get(f"/fhir/Patient?_id={someone['id']}")
    rows = [
        entry
        for entry in (json.loads(data) for _, data in services.unwrap_ledger.store.entries())
        if entry["key_id"] not in ("index", "directory", "credentials")
    ]
    assert len(rows) == 2
    assert {row["principal"] for row in rows} == {"system:test"}
    assert {row["purpose"] for row in rows} == {"TREAT"}
    assert len({row["key_id"] for row in rows}) == 1
    assert someone["id"] not in rows[0]["key_id"]  # a pseudonym, not the patient's id
