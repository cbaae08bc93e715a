"""PATCH [type]/[id] (JSON Patch, JSON Merge Patch) end to end through the app, on SQLite
and PostgreSQL: what a patch changes, and that a bad one answers an OperationOutcome and
changes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.ledger.events import AuditEvent, Tag
from tests.integration.rest.test_interactions import create, patient
from tests.support.client import FhirTestClient

JSON_PATCH = {"content-type": "application/json-patch+json"}
MERGE_PATCH = {"content-type": "application/merge-patch+json"}


def send_patch(
    api: FhirTestClient, path: str, body: Any, headers: dict[str, str] | None = None
) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return api.patch(path, content=content, headers=headers or JSON_PATCH)


def events(services: Services, tag: Tag) -> list[AuditEvent]:
    found = [AuditEvent.from_canonical(data) for _, data in services.audit_ledger.store.entries()]
    return [event for event in found if event.tag == tag]


def test_a_json_patch_makes_a_new_version_with_the_change(
    api: FhirTestClient, services: Services
) -> None:
    created = create(api, patient())
    path = f"/fhir/Patient/{created['id']}"

    response = send_patch(
        api,
        path,
        [
            {"op": "test", "path": "/gender", "value": "male"},
            {"op": "replace", "path": "/gender", "value": "female"},
            {"op": "add", "path": "/telecom/-", "value": {"system": "phone", "value": "2345 6789"}},
            {"op": "remove", "path": "/name/1"},
        ],
        {**JSON_PATCH, "If-Match": 'W/"1"'},
    )

    assert response.status_code == 200, response.text
    assert response.headers["etag"] == 'W/"2"'
    body = response.json()
    assert body["gender"] == "female" and body["meta"]["versionId"] == "2"
    assert len(body["telecom"]) == 3 and len(body["name"]) == 1
    assert api.get(path).json() == body
    assert api.get(f"{path}/_history/1").json()["gender"] == "male"
    (updated,) = [e for e in events(services, Tag.FHIR_UPDATE) if e.resource_id == created["id"]]
    assert updated.detail["version"] == 2


def test_a_merge_patch_and_plain_json_object_merge(api: FhirTestClient) -> None:
    created = create(api, patient())
    path = f"/fhir/Patient/{created['id']}"

    merged = send_patch(api, path, {"gender": "other", "telecom": None}, MERGE_PATCH)
    assert merged.status_code == 200, merged.text
    assert merged.json()["gender"] == "other" and "telecom" not in merged.json()

    plain = send_patch(api, path, {"gender": "unknown"}, {"content-type": "application/json"})
    assert plain.status_code == 200, plain.text
    assert plain.json()["gender"] == "unknown" and plain.json()["meta"]["versionId"] == "3"

    as_array = send_patch(
        api,
        path,
        [{"op": "replace", "path": "/gender", "value": "male"}],
        {"content-type": "application/json"},
    )
    assert as_array.status_code == 200 and as_array.json()["gender"] == "male"


def test_a_decimal_keeps_its_precision_through_a_patch(api: FhirTestClient) -> None:
    subject = create(api, patient())
    observation = (
        '{"resourceType":"Observation","status":"final","code":{"text":"weight"},'
        f'"subject":{{"reference":"Patient/{subject["id"]}"}},'
        '"valueQuantity":{"value":72.50,"unit":"kg"}}'
    )
    created = api.post(
        "/fhir/Observation",
        content=observation.encode(),
        headers={"content-type": "application/fhir+json"},
    )
    assert created.status_code == 201
    path = f"/fhir/Observation/{created.json()['id']}"

    response = send_patch(
        api,
        path,
        b'[{"op":"replace","path":"/status","value":"amended"},'
        b'{"op":"add","path":"/referenceRange","value":[{"low":{"value":12345678901234567890.123}}]}]',
    )

    assert response.status_code == 200, response.text
    stored = api.get(path).text
    assert '"value":72.50' in stored
    assert '"value":12345678901234567890.123' in stored


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"[{", JSON_PATCH, 400),
        (b'{"op":"remove","path":"/gender"}', JSON_PATCH, 400),
        (b'[{"op":"launch","path":"/gender"}]', JSON_PATCH, 400),
        (b"[1]", MERGE_PATCH, 400),
        (b'[{"op":"test","path":"/gender","value":"female"}]', JSON_PATCH, 409),
        (b'[{"op":"remove","path":"/deceasedBoolean"}]', JSON_PATCH, 409),
        (b'[{"op":"replace","path":"/id","value":"someone-else"}]', JSON_PATCH, 422),
        (b'[{"op":"add","path":"/meta/tag","value":[{"code":"x"}]}]', JSON_PATCH, 422),
        (b'{"meta":{"versionId":"7"}}', MERGE_PATCH, 422),
        (b'[{"op":"replace","path":"/gender","value":"robot"}]', JSON_PATCH, 422),
        (b'[{"op":"add","path":"/noSuchElement","value":1}]', JSON_PATCH, 422),
        (b'[{"op":"replace","path":"/gender","value":"female"}]', {"If-Match": 'W/"9"'}, 412),
        (
            b'{"resourceType":"Parameters"}',
            {"content-type": "application/fhir+json"},
            415,
        ),
    ],
)
def test_a_bad_patch_answers_an_operation_outcome_and_changes_nothing(
    api: FhirTestClient, body: bytes, headers: dict[str, str], status: int
) -> None:
    created = create(api, patient())
    path = f"/fhir/Patient/{created['id']}"

    response = send_patch(api, path, body, {**JSON_PATCH, **headers})

    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    assert api.get(path).json() == created


def test_an_oversized_patch_is_refused(api: FhirTestClient, services: Services) -> None:
    created = create(api, patient())
    path = f"/fhir/Patient/{created['id']}"
    limit = services.settings.max_body_bytes
    huge = [{"op": "add", "path": "/name/-", "value": {"text": "x" * 4000}}] * (limit // 4000 + 1)

    response = send_patch(api, path, huge)

    assert response.status_code == 413
    assert api.get(path).json() == created


def test_patching_what_does_not_exist_answers_404_or_410(api: FhirTestClient) -> None:
    patch = [{"op": "replace", "path": "/gender", "value": "female"}]
    assert send_patch(api, "/fhir/Patient/no-such-patient", patch).status_code == 404
    created = create(api, patient())
    assert api.delete(f"/fhir/Patient/{created['id']}").status_code == 204
    assert send_patch(api, f"/fhir/Patient/{created['id']}", patch).status_code == 410


def test_a_patch_entry_in_a_bundle_is_refused_clearly(api: FhirTestClient) -> None:
    created = create(api, patient())
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {
                    "resourceType": "Binary",
                    "contentType": "application/json-patch+json",
                    "data": "W10=",
                },
                "request": {"method": "PATCH", "url": f"Patient/{created['id']}"},
            }
        ],
    }

    response = api.post_json("/fhir", bundle)

    assert response.status_code == 400
    assert "PATCH entries are not supported" in response.json()["issue"][0]["diagnostics"]
    assert api.get(f"/fhir/Patient/{created['id']}").json() == created


def test_the_capability_statement_lists_patch_and_conditional_interactions(
    api: FhirTestClient,
) -> None:
    statement = api.get("/fhir/metadata").json()
    for entry in statement["rest"][0]["resource"]:
        if entry["type"] == "AuditEvent":  # the audit ledger: searched, never written
            assert entry["interaction"] == [{"code": "search-type"}]
            continue
        if entry["type"] == "Group":  # a clinic: its $export only, never written
            assert "interaction" not in entry
            continue
        assert {"code": "patch"} in entry["interaction"]
        assert entry["conditionalUpdate"] is True
        assert entry["conditionalDelete"] == "single"


def test_a_patch_whose_result_would_be_oversized_is_refused(api: FhirTestClient) -> None:
    created = create(api, patient())
    path = f"/fhir/Patient/{created['id']}"
    doubling = [{"op": "copy", "from": "/telecom", "path": "/telecom/-"}] * 64

    response = send_patch(api, path, doubling)

    assert response.status_code == 413
    assert response.json()["issue"][0]["code"] == "too-long"
    assert api.get(path).json() == created
