"""The FHIR release and the charset a request names, and DSTU2's JSON type, over HTTP on
SQLite and PostgreSQL: R4 JSON in UTF-8 is served and read, any other release is
refused (406 in ``Accept``, 415 in ``Content-Type``), as is a body in another charset
(415), every refusal an OperationOutcome that repeats nothing the client sent."""

from __future__ import annotations

import json
from typing import Any

import pytest

from carevault.fhir.mediatype import BODY_NOT_R4, NOT_R4, NOT_UTF8
from tests.integration.rest.test_interactions import create, patient
from tests.support.client import FhirTestClient


def _found(api: FhirTestClient, family: str) -> int:
    response = api.get(f"/fhir/Patient?family={family}&_total=accurate")
    assert response.status_code == 200, response.text
    return int(response.json()["total"])


def _jose(family: str) -> dict[str, Any]:
    """A Patient whose text ISO-8859-1 can carry (one accented letter)."""
    return {"resourceType": "Patient", "name": [{"family": family, "given": ["José"]}]}


def _refusal(response: Any, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "not-supported"
    assert body["issue"][0]["diagnostics"] == message


@pytest.fixture
def stored(api: FhirTestClient) -> dict[str, Any]:
    return create(api, patient())


@pytest.mark.parametrize(
    "accept",
    [
        "application/fhir+json; fhirVersion=3.0",
        "application/fhir+json;fhirVersion=5.0",
        "application/json+fhir; fhirVersion=1.0",
        "application/fhir+json; fhirVersion=4.3, application/fhir+xml",
    ],
)
def test_a_client_asking_for_another_release_gets_406(
    api: FhirTestClient, stored: dict[str, Any], accept: str
) -> None:
    for url in (f"/fhir/Patient/{stored['id']}", "/fhir/Patient?family=Chan", "/fhir/metadata"):
        _refusal(api.get(url, headers={"Accept": accept}), 406, NOT_R4)


def test_406_for_another_release_comes_before_a_write(
    api: FhirTestClient, stored: dict[str, Any]
) -> None:
    r3 = {"Accept": "application/fhir+json; fhirVersion=3.0"}
    changed = {**stored, "gender": "female"}
    _refusal(api.put_json(f"/fhir/Patient/{stored['id']}", changed, **r3), 406, NOT_R4)
    assert api.get(f"/fhir/Patient/{stored['id']}").json()["gender"] == "male"


@pytest.mark.parametrize(
    "accept",
    [
        "application/fhir+json; fhirVersion=4.0",
        "application/fhir+json; fhirVersion=4.0.1",
        "application/json+fhir",
        "application/fhir+json; fhirVersion=3.0, application/fhir+json; fhirVersion=4.0",
    ],
)
def test_r4_is_answered(api: FhirTestClient, stored: dict[str, Any], accept: str) -> None:
    response = api.get(f"/fhir/Patient/{stored['id']}", headers={"Accept": accept})
    assert response.status_code == 200, response.text
    assert response.json()["id"] == stored["id"]


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("application/fhir+json; fhirVersion=3.0", json.dumps(patient("Refused")), BODY_NOT_R4),
        ("application/fhir+json; fhirVersion=1.0", json.dumps(patient("Refused")), BODY_NOT_R4),
        # José, as ISO-8859-1 sends it: read as UTF-8 it would be stored garbled.
        (
            "application/fhir+json; charset=iso-8859-1",
            json.dumps(_jose("Refused"), ensure_ascii=False).encode("latin-1"),
            NOT_UTF8,
        ),
        ("application/json; charset=windows-1252", json.dumps(patient("Refused")), NOT_UTF8),
    ],
)
def test_a_body_of_another_release_or_charset_is_refused_with_415_and_not_stored(
    api: FhirTestClient, content_type: str, body: str | bytes, message: str
) -> None:
    response = api.post("/fhir/Patient", content=body, headers={"content-type": content_type})
    _refusal(response, 415, message)
    assert _found(api, "Refused") == 0


@pytest.mark.parametrize(
    "content_type",
    [
        "application/fhir+json; fhirVersion=4.0; charset=UTF-8",
        "application/fhir+json; charset=utf-8",
        "application/json+fhir",
        "application/json+fhir; charset=utf-8; fhirVersion=4.0.1",
    ],
)
def test_an_r4_body_in_utf8_is_read_under_every_json_name(
    api: FhirTestClient, content_type: str
) -> None:
    body = json.dumps(_jose("Accepted"), ensure_ascii=False).encode()
    response = api.post("/fhir/Patient", content=body, headers={"content-type": content_type})
    assert response.status_code == 201, response.text
    assert response.json()["name"][0]["given"] == ["José"]


def test_the_dstu2_type_is_read_for_an_update_too(
    api: FhirTestClient, stored: dict[str, Any]
) -> None:
    changed = {**stored, "gender": "female"}
    response = api.put_json(
        f"/fhir/Patient/{stored['id']}", changed, **{"content-type": "application/json+fhir"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["gender"] == "female"


def test_a_patch_or_a_search_form_in_another_charset_is_refused(
    api: FhirTestClient, stored: dict[str, Any]
) -> None:
    patch = api.patch(
        f"/fhir/Patient/{stored['id']}",
        content=json.dumps({"gender": "female"}),
        headers={"content-type": "application/merge-patch+json; charset=iso-8859-1"},
    )
    _refusal(patch, 415, NOT_UTF8)
    assert api.get(f"/fhir/Patient/{stored['id']}").json()["gender"] == "male"
    search = api.post(
        "/fhir/Patient/_search",
        content="family=Jos%E9",
        headers={"content-type": "application/x-www-form-urlencoded; charset=ISO-8859-1"},
    )
    _refusal(search, 415, NOT_UTF8)
    utf8 = api.post(
        "/fhir/Patient/_search",
        content="family=Chan",
        headers={"content-type": "application/x-www-form-urlencoded; charset=UTF-8"},
    )
    assert utf8.status_code == 200, utf8.text


def test_a_refusal_repeats_nothing_sent(api: FhirTestClient) -> None:
    sent = "<script>alert(1)</script>"
    accept = api.get(
        "/fhir/metadata", headers={"Accept": f"application/fhir+json; fhirVersion={sent}"}
    )
    body = api.post(
        "/fhir/Patient",
        content=json.dumps(patient("Refused")),
        headers={"content-type": f"application/fhir+json; charset={sent}"},
    )
    for response in (accept, body):
        assert response.status_code in (406, 415)
        assert "script" not in response.text
