"""Batch and transaction entries answer ``Prefer: return=`` as the same write sent on its
own would (FHIR R4 http.html#transaction-response, http.html#ops), name what they wrote
by ``fullUrl``, and show a writer no more than a single write shows them. On SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.ledger.events import AuditEvent
from tests.integration.access.group import HKID_SYSTEM, Group, build_group
from tests.integration.rest.test_interactions import create, observation, patient
from tests.support.client import FHIR_JSON, FhirTestClient
from tests.support.staff import open_token

PATIENT_URN = "urn:uuid:7a1c0f52-4b7e-4c1e-9a53-0d3f2b7e1a01"
ENCOUNTER_URN = "urn:uuid:7a1c0f52-4b7e-4c1e-9a53-0d3f2b7e1a02"
OBSERVATION_URN = "urn:uuid:7a1c0f52-4b7e-4c1e-9a53-0d3f2b7e1a03"


def a_visit() -> dict[str, Any]:
    """A transaction of a patient, their visit and a reading, linked by urn:uuid."""
    reading = observation("placeholder", "2024-03-01T10:00:00+08:00")
    reading["subject"] = {"reference": PATIENT_URN}
    reading["encounter"] = {"reference": ENCOUNTER_URN}
    visit = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": PATIENT_URN},
        "period": {"start": "2024-03-01T09:00:00+08:00"},
    }
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": url,
                "resource": resource,
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
            for url, resource in (
                (PATIENT_URN, patient()),
                (ENCOUNTER_URN, visit),
                (OBSERVATION_URN, reading),
            )
        ],
    }


def searched_full_url(api: FhirTestClient, reference: str) -> str:
    """The fullUrl a search Bundle gives the record ``reference`` (Type/id)."""
    type_name, resource_id = reference.split("/")
    found = api.get(f"/fhir/{type_name}?_id={resource_id}").json()
    return str(found["entry"][0]["fullUrl"])


def reference_of(entry: dict[str, Any]) -> str:
    return "/".join(entry["response"]["location"].split("/")[:2])


def test_a_transaction_with_return_representation_answers_each_resource_as_a_create_would(
    api: FhirTestClient,
) -> None:
    reply = api.post_json("/fhir", a_visit(), prefer="return=representation")

    assert reply.status_code == 200, reply.text
    entries = reply.json()["entry"]
    assert [entry["response"]["status"] for entry in entries] == ["201 Created"] * 3
    patient_ref = reference_of(entries[0])
    for entry in entries:
        reference = reference_of(entry)
        assert entry["fullUrl"] == searched_full_url(api, reference)
        # What a single create would answer: the stored version as its writer reads it.
        assert entry["resource"] == api.get(f"/fhir/{reference}").json()
        assert entry["response"]["etag"] == 'W/"1"'
        assert "outcome" not in entry["response"]
    assert entries[1]["resource"]["subject"] == {"reference": patient_ref}
    assert entries[2]["resource"]["encounter"] == {"reference": reference_of(entries[1])}


def test_a_transaction_with_return_operation_outcome_says_each_was_saved(
    api: FhirTestClient,
) -> None:
    someone = create(api, patient("Lee", "Siu Ming", "C668668(9)"))
    alone = api.post_json(
        "/fhir/Observation",
        observation(someone["id"], "2024-01-01"),
        prefer="return=OperationOutcome",
    )
    assert alone.status_code == 201, alone.text
    single = alone.json()

    reply = api.post_json("/fhir", a_visit(), prefer="return=OperationOutcome")

    assert reply.status_code == 200, reply.text
    for entry in reply.json()["entry"]:
        assert "resource" not in entry
        reference = reference_of(entry)
        assert entry["fullUrl"] == searched_full_url(api, reference)
        # The OperationOutcome a single create answers, naming this entry's record.
        said = {**single["issue"][0], "diagnostics": f"{reference} saved as version 1"}
        assert entry["response"]["outcome"] == {**single, "issue": [said]}


@pytest.mark.parametrize("prefer", [None, "return=minimal", "handling=lenient"])
def test_without_a_return_preference_or_with_minimal_an_entry_is_its_response_alone(
    api: FhirTestClient, prefer: str | None
) -> None:
    headers = {"prefer": prefer} if prefer else {}

    reply = api.post_json("/fhir", a_visit(), **headers)

    assert reply.status_code == 200, reply.text
    for entry in reply.json()["entry"]:
        assert set(entry) == {"fullUrl", "response"}
        assert set(entry["response"]) == {"status", "location", "etag", "lastModified"}
        assert entry["fullUrl"] == searched_full_url(api, reference_of(entry))


@pytest.mark.parametrize("prefer", ["return=representation", "return=OperationOutcome"])
def test_a_batch_answers_prefer_for_its_writes_and_leaves_deletes_and_reads_alone(
    api: FhirTestClient, prefer: str
) -> None:
    someone = create(api, patient())
    doomed = create(api, observation(someone["id"], "2024-01-01"))
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": {**someone, "gender": "female"},
                "request": {"method": "PUT", "url": f"Patient/{someone['id']}"},
            },
            {"request": {"method": "DELETE", "url": f"Observation/{doomed['id']}"}},
            {"request": {"method": "GET", "url": f"Patient/{someone['id']}"}},
        ],
    }

    reply = api.post_json("/fhir", bundle, prefer=prefer)

    updated, deleted, read = reply.json()["entry"]
    assert updated["response"]["status"] == "200 OK"
    assert updated["fullUrl"] == searched_full_url(api, f"Patient/{someone['id']}")
    if prefer == "return=representation":
        assert updated["resource"] == api.get(f"/fhir/Patient/{someone['id']}").json()
        assert updated["resource"]["gender"] == "female"
    else:
        assert "resource" not in updated
        assert updated["response"]["outcome"]["issue"][0]["diagnostics"] == (
            f"Patient/{someone['id']} saved as version 2"
        )
    # A DELETE answers 204 with no body whatever is preferred, alone or in a Bundle.
    assert deleted == {"response": {"status": "204 No Content", "etag": 'W/"2"'}}
    # A read answers as a read by id on its own, whatever is preferred: the record, its
    # URL, ETag and last change (integrator round 57).
    assert set(read) == {"fullUrl", "resource", "response"}
    assert read["fullUrl"] == updated["fullUrl"]
    assert read["response"] == {
        "status": "200 OK",
        "etag": 'W/"2"',
        "lastModified": read["resource"]["meta"]["lastUpdated"],
    }


def test_a_conditional_create_that_finds_its_record_answers_it_as_post_would(
    api: FhirTestClient,
) -> None:
    someone = create(api, patient())
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": PATIENT_URN,
                "resource": patient(),
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": "identifier=A123456(3)",
                },
            }
        ],
    }
    alone = api.post_json(
        "/fhir/Patient",
        patient(),
        prefer="return=representation",
        **{"if-none-exist": "identifier=A123456(3)"},
    )

    [entry] = api.post_json("/fhir", bundle, prefer="return=representation").json()["entry"]

    assert alone.status_code == 200
    # Its version, ETag and Last-Modified, as the request alone answers in its headers
    # (an unversioned location alone until integrator round 65).
    response = entry["response"]
    assert response == {
        "status": "200 OK",
        "location": f"Patient/{someone['id']}/_history/1",
        "etag": alone.headers["etag"],
        "lastModified": response["lastModified"],
    }
    assert alone.headers["location"].endswith(response["location"])
    assert entry["fullUrl"] == searched_full_url(api, f"Patient/{someone['id']}")
    assert entry["resource"] == alone.json()


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _written_events(group: Group, before: int) -> list[tuple[str, str, str | None, list[str]]]:
    found: list[AuditEvent] = group.events()[before:]
    return [
        (str(event.tag), str(event.outcome), event.resource_type, sorted(event.categories))
        for event in found
    ]


@pytest.mark.parametrize("kind", ["batch", "transaction"])
def test_an_entry_shows_the_front_desk_only_what_a_single_update_shows_it(
    group: Group, kind: str
) -> None:
    path = f"/fhir/Patient/{group.tw_patient.id}"
    view = group.call(group.desk_tw, "GET", path).json()
    assert "identifier" not in view
    headers = {**group.desk_tw.headers, **FHIR_JSON, "prefer": "return=representation"}
    before = len(group.events())
    alone = group.web.put_json(
        path, {**view, "telecom": [{"system": "phone", "value": "+852 9000 1111"}]}, **headers
    )
    assert alone.status_code == 200, alone.text
    single_events = _written_events(group, before)
    current = alone.json()
    bundle = {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [
            {
                "resource": {
                    **current,
                    "telecom": [{"system": "phone", "value": "+852 9000 2222"}],
                },
                "request": {"method": "PUT", "url": f"Patient/{group.tw_patient.id}"},
            }
        ],
    }
    before = len(group.events())

    reply = group.web.post_json("/fhir", bundle, **headers)

    assert reply.status_code == 200, reply.text
    [entry] = reply.json()["entry"]
    shown = entry["resource"]
    # The stored record keeps the HKID the desk may not see; the entry does not carry it.
    assert "identifier" not in shown and group.tw_patient.hkid not in reply.text
    assert shown["telecom"] == [{"system": "phone", "value": "+852 9000 2222"}]
    assert set(shown) == set(current)
    # In the ledger as the single update was: one write entry, naming the same categories.
    assert _written_events(group, before) == single_events
    full = group.call(group.doctor_tw, "GET", path).json()
    assert full["identifier"] == [{"system": HKID_SYSTEM, "value": group.tw_patient.hkid}]


@pytest.mark.parametrize("kind", ["batch", "transaction"])
def test_a_token_that_may_write_but_not_read_is_told_saved_not_shown(
    group: Group, kind: str
) -> None:
    token = open_token(group.services, group.desk_tm.account, "user/Patient.cu")
    bundle = {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [
            {
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": HKID_SYSTEM, "value": "Z000000(1)"}],
                    "name": [{"family": "Blind"}],
                },
                "request": {"method": "POST", "url": "Patient"},
            }
        ],
    }

    reply = group.web.post_json(
        "/fhir", bundle, authorization=f"Bearer {token}", prefer="return=representation"
    )

    assert reply.status_code == 200, reply.text
    [entry] = reply.json()["entry"]
    assert entry["response"]["status"] == "201 Created"
    assert "resource" not in entry
    assert entry["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert "Blind" not in reply.text and "Z000000" not in reply.text
