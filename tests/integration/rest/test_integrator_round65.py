"""What an integrator met driving the FHIR API with Node clients (fhir-kit-client, the
SMART client-js), integrator round 65, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.gate import Caller
from carevault.vault.records import Opened
from tests.integration.rest.test_interactions import create, patient
from tests.support.client import FhirTestClient

SYSTEM = "http://int65.example/mrn"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"


def _observation(patient_id: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "weight"},
        "subject": {"reference": f"Patient/{patient_id}"},
    }
    body.update(extra)
    return body


#: Elements left empty (R4 element.html ele-1: "All FHIR elements must have a @value or
#: children"), each somewhere else in an Observation.
EMPTIED: tuple[dict[str, Any], ...] = (
    {"valueQuantity": {}},
    {"code": {}},
    {"component": [{"code": {"text": "a"}, "valueQuantity": {}}]},
    {"meta": {}},
    {"note": [{"text": "n", "_text": {}}]},
    {"extension": [{"url": "http://int65.example/x", "valueQuantity": {}}]},
)


@pytest.mark.parametrize("extra", EMPTIED)
def test_an_empty_object_is_refused_as_an_empty_array_is(
    api: FhirTestClient, extra: dict[str, Any]
) -> None:
    """``"valueQuantity": {}`` and ``"code": {}`` were stored (201), so an Observation
    with no code at all was kept; an empty array (``"note": []``), an empty string and
    null are refused (400). An empty object is refused the same way on create, update,
    a transaction's or a batch's entry, and ``$validate`` says so; nothing is stored."""
    someone = create(api, patient())["id"]
    sent = _observation(someone, **extra)
    answer = api.post_json("/fhir/Observation", sent)
    assert answer.status_code == 400, (extra, answer.status_code, answer.text[:300])
    assert "empty objects are not allowed" in answer.text, answer.text

    made = create(api, _observation(someone))
    updated = api.put_json(f"/fhir/Observation/{made['id']}", {**sent, "id": made["id"]})
    assert updated.status_code == 400, updated.text

    for kind in ("transaction", "batch"):
        bundle = {
            "resourceType": "Bundle",
            "type": kind,
            "entry": [{"resource": sent, "request": {"method": "POST", "url": "Observation"}}],
        }
        answer = api.post_json("/fhir", bundle)
        if kind == "transaction":
            assert answer.status_code == 400, answer.text
        else:
            assert answer.status_code == 200, answer.text
            response = answer.json()["entry"][0]["response"]
            assert response["status"].startswith("400"), response

    checked = api.post_json("/fhir/Observation/$validate", sent)
    assert checked.status_code == 200, checked.text
    issues = checked.json()["issue"]
    assert any(issue["severity"] == "error" for issue in issues), issues
    assert "empty objects are not allowed" in checked.text, checked.text

    stored = api.get(f"/fhir/Observation?subject=Patient/{someone}&_summary=count").json()
    assert stored["total"] == 1  # only the one made valid
    assert api.get(f"/fhir/Observation/{made['id']}").json()["meta"]["versionId"] == "1"


@pytest.mark.parametrize(
    ("body", "media"),
    [
        (
            '[{"op":"remove","path":"/valueQuantity/value"},'
            '{"op":"remove","path":"/valueQuantity/unit"}]',
            JSON_PATCH,
        ),
        ('[{"op":"replace","path":"/code","value":{}}]', JSON_PATCH),
        ('[{"op":"remove","path":"/component/0/valueQuantity/value"}]', JSON_PATCH),
        ('{"valueQuantity":{"value":null,"unit":null}}', MERGE_PATCH),
        ('{"component":[{"code":{"text":"a"},"valueQuantity":{}}]}', MERGE_PATCH),
    ],
)
def test_a_patch_that_would_leave_an_empty_object_is_refused(
    api: FhirTestClient, body: str, media: str
) -> None:
    """A JSON Patch removing an element's last member, or a merge patch nulling each of
    them, stored ``{}`` (200); the result of a patch that is not a valid resource is 422
    (docs/rest.md, "Patch formats"), and the record stays as it was."""
    someone = create(api, patient())["id"]
    made = create(
        api,
        _observation(
            someone,
            valueQuantity={"value": 72.5, "unit": "kg"},
            component=[{"code": {"text": "a"}, "valueQuantity": {"value": 1.1}}],
        ),
    )
    path = f"/fhir/Observation/{made['id']}"
    answer = api.patch(path, content=body, headers={"content-type": media})
    assert answer.status_code == 422, (body, answer.status_code, answer.text[:300])
    assert "empty objects are not allowed" in answer.text, answer.text
    assert api.get(path).json()["meta"]["versionId"] == "1"


def test_a_bundle_entry_whose_conditional_create_matched_answers_as_alone(
    api: FhirTestClient,
) -> None:
    """docs/rest.md (Batch and transaction entries): a conditional create that found its
    record answers ``location`` with its version, ``etag`` and ``lastModified``, as the
    same request alone does (Location ``…/_history/n``, ETag, Last-Modified). The entry
    answered only ``status`` and an unversioned ``location``, whatever was preferred."""
    body = {
        "resourceType": "Patient",
        "identifier": [{"system": SYSTEM, "value": "M-1"}],
        "name": [{"family": "Cc"}],
    }
    made = create(api, body)
    changed = api.put_json(f"/fhir/Patient/{made['id']}", {**body, "id": made["id"]})
    assert changed.status_code == 200
    criteria = f"identifier={SYSTEM}|M-1"
    alone = api.post_json("/fhir/Patient", body, **{"If-None-Exist": criteria})
    assert alone.status_code == 200
    assert alone.headers["etag"] == 'W/"2"'
    assert alone.headers["location"].endswith(f"/Patient/{made['id']}/_history/2")
    for kind in ("transaction", "batch"):
        for prefer in (None, "return=minimal", "return=representation"):
            bundle = {
                "resourceType": "Bundle",
                "type": kind,
                "entry": [
                    {
                        "resource": body,
                        "request": {"method": "POST", "url": "Patient", "ifNoneExist": criteria},
                    }
                ],
            }
            headers = {"Prefer": prefer} if prefer else {}
            answer = api.post_json("/fhir", bundle, **headers)
            assert answer.status_code == 200, answer.text
            (entry,) = answer.json()["entry"]
            response = entry["response"]
            assert response == {
                "status": "200 OK",
                "location": f"Patient/{made['id']}/_history/2",
                "etag": 'W/"2"',
                "lastModified": response.get("lastModified"),
            }, (kind, prefer, response)
            assert response["lastModified"].startswith("20"), response


def test_a_conditional_create_that_matched_says_it_found_and_wrote_nothing(
    api: FhirTestClient,
) -> None:
    """With ``Prefer: return=OperationOutcome``, alone and in a Bundle, a conditional
    create that found its record said "Patient/… saved as version n", though nothing
    was saved: it says the record was found, and nothing written."""
    body = {"resourceType": "Patient", "identifier": [{"system": SYSTEM, "value": "M-2"}]}
    made = create(api, body)
    criteria = f"identifier={SYSTEM}|M-2"
    prefer = {"Prefer": "return=OperationOutcome"}
    alone = api.post_json("/fhir/Patient", body, **{"If-None-Exist": criteria}, **prefer)
    assert alone.status_code == 200
    outcomes = [alone.json()]
    for kind in ("transaction", "batch"):
        request = {"method": "POST", "url": "Patient", "ifNoneExist": criteria}
        bundle = {
            "resourceType": "Bundle",
            "type": kind,
            "entry": [{"resource": body, "request": request}],
        }
        answer = api.post_json("/fhir", bundle, **prefer)
        assert answer.status_code == 200, answer.text
        outcomes.append(answer.json()["entry"][0]["response"]["outcome"])
    for said in outcomes:
        words = json.dumps(said)
        assert "saved" not in words, words
        assert f"Patient/{made['id']}" in words and "found" in words, words
        assert "nothing written" in words, words
    created = api.post_json(
        "/fhir/Patient", {**body, "identifier": [{"system": SYSTEM, "value": "M-3"}]}, **prefer
    )
    assert created.status_code == 201
    assert "saved as version 1" in created.text, created.text


def _written_meanwhile(
    services: Services, monkeypatch: pytest.MonkeyPatch, between: Callable[[], None]
) -> None:
    """Every read by the gate runs ``between`` once after it: another write that comes
    between a PATCH's read and its write."""
    gate = services.fhir.gate
    read = gate.read
    pending = [between]

    def read_then_write(*args: Any, **kwargs: Any) -> Opened:
        found = read(*args, **kwargs)
        while pending:
            pending.pop()()
        return found

    monkeypatch.setattr(gate, "read", read_then_write)


def test_a_patch_without_if_match_beaten_by_another_write_is_a_conflict(
    api: FhirTestClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten PATCHes at once with no If-Match: one 200, nine 412 "If-Match names version
    2, which is not the current version", naming a header they never sent (RFC 9110
    15.5.13 keeps 412 for conditions the request's headers set). Without If-Match, a
    PATCH whose read another write overtook is 409, saying another write came first and
    to send it again; with If-Match, 412 as before."""
    made = create(api, patient())
    path = f"/fhir/Patient/{made['id']}"

    def another_write() -> None:
        body = {**patient(), "id": made["id"], "gender": "female"}
        services.fhir.update(
            Caller(principal="system:test"),
            "Patient",
            made["id"],
            json.dumps(body).encode(),
            "http://testserver/fhir",
            if_match=None,
            prefer=None,
        )

    _written_meanwhile(services, monkeypatch, another_write)
    patch = '[{"op":"add","path":"/birthDate","value":"1970-01-01"}]'
    answer = api.patch(path, content=patch, headers={"content-type": JSON_PATCH})
    assert answer.status_code == 409, answer.text
    assert "If-Match" not in answer.text, answer.text
    assert "came first" in answer.text and "send it again" in answer.text, answer.text
    assert api.get(path).json()["meta"]["versionId"] == "2"
    again = api.patch(path, content=patch, headers={"content-type": JSON_PATCH})
    assert again.status_code == 200, again.text

    _written_meanwhile(services, monkeypatch, another_write)
    current = api.get(path).json()["meta"]["versionId"]
    headers = {"content-type": JSON_PATCH, "If-Match": f'W/"{current}"'}
    guarded = api.patch(path, content=patch, headers=headers)
    assert guarded.status_code == 412, guarded.text
    assert "If-Match" in guarded.text, guarded.text


def _at_once(actions: list[Callable[[], Any]]) -> list[Any]:
    results: list[Any] = [None] * len(actions)
    start = threading.Barrier(len(actions))

    def run(n: int) -> None:
        start.wait()
        results[n] = actions[n]()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(actions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_writes_at_once_without_if_match_never_answer_412(api: FhirTestClient) -> None:
    """fhir-kit-client's ten PATCHes at once on one patient, and ten PUTs: none sent
    If-Match, so none is answered 412; a PATCH another write overtook is 409."""
    made = create(api, patient())
    path = f"/fhir/Patient/{made['id']}"
    headers = {"content-type": JSON_PATCH}
    patches = [
        (
            lambda n=n: api.patch(
                path,
                content=json.dumps(
                    [
                        {
                            "op": "add",
                            "path": "/telecom",
                            "value": [{"system": "phone", "value": f"9000000{n}"}],
                        }
                    ]
                ),
                headers=headers,
            )
        )
        for n in range(10)
    ]
    answers = _at_once(patches)
    statuses = [answer.status_code for answer in answers]
    assert set(statuses) <= {200, 409}, statuses
    assert 200 in statuses, statuses
    for answer in answers:
        if answer.status_code == 409:
            assert "came first" in answer.text, answer.text

    puts = [
        (
            lambda n=n: api.put_json(
                path, {**patient(), "id": made["id"], "name": [{"family": f"Race{n}"}]}
            )
        )
        for n in range(10)
    ]
    statuses = [answer.status_code for answer in _at_once(puts)]
    assert set(statuses) <= {200, 409}, statuses
