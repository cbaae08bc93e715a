"""What a Python integrator met driving the FHIR API with fhirpy, fhir.resources, httpx
and PyJWT (integrator round 64), sent here exactly as those clients (or a URL typed from
R4's pages) sent it, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from carevault.fhir.mediatype import NOT_JSON, NOT_R4
from tests.integration.rest.test_interactions import create, patient
from tests.support.client import FhirTestClient

#: ``_format`` as R4 (http.html#mime-type) spells it, written into a URL without
#: escaping its ``+``: the query string reads it as a space.
UNESCAPED = (
    "application/fhir+json",
    "application/json+fhir",
    "application/fhir+json;fhirVersion=4.0",
    "application/fhir+json, application/fhir+xml",
)


@pytest.fixture
def stored(api: FhirTestClient) -> dict[str, Any]:
    return create(api, patient())


@pytest.mark.parametrize("asked", UNESCAPED)
def test_format_with_an_unescaped_plus_is_the_json_it_names(
    api: FhirTestClient, stored: dict[str, Any], asked: str
) -> None:
    """``GET Patient/[id]?_format=application/fhir+json`` (the type R4 names, its ``+``
    left as typed) was answered ``406`` "this server answers in JSON only: accept
    application/fhir+json", naming the very type asked for, because the query string
    turned the ``+`` into a space. No media type's name holds a space, so the space is
    the ``+`` that was sent: read, vread, search (and its next page), history, HEAD,
    metadata and a batch's search entry now answer R4 JSON."""
    identity = stored["id"]
    for path in (
        f"/fhir/Patient/{identity}",
        f"/fhir/Patient/{identity}/_history/1",
        f"/fhir/Patient/{identity}/_history",
        "/fhir/Patient/_history",
        "/fhir/Patient",
        "/fhir/metadata",
    ):
        answer = api.get(f"{path}?_format={asked}")
        assert answer.status_code == 200, (path, answer.text)
        assert answer.headers["content-type"].startswith("application/fhir+json")
        assert api.head(f"{path}?_format={asked}").status_code == 200, path

    first = api.get(f"/fhir/Patient?_count=1&_format={asked}")
    assert first.status_code == 200, first.text
    following = [link["url"] for link in first.json()["link"] if link["relation"] == "next"]
    if following:
        assert api.get(following[0]).status_code == 200

    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": f"Patient?_id={identity}&_format={asked}"}}],
    }
    answered = api.post("/fhir", json=batch)
    assert answered.status_code == 200, answered.text
    (entry,) = answered.json()["entry"]
    assert entry["response"]["status"].startswith("200"), entry
    assert entry["resource"]["total"] == 1


@pytest.mark.parametrize(
    ("asked", "message"),
    [
        # Still refused: another format with its + unescaped, and another release
        # named in a parameter (whose own spaces are kept, so it still names it).
        ("application/fhir+xml", NOT_JSON),
        ("xml", NOT_JSON),
        ("application/fhir%2Bjson;%20fhirVersion=3.0", NOT_R4),
        ("application/fhir+json; fhirVersion=3.0", NOT_R4),
    ],
)
def test_format_naming_another_format_or_release_is_still_406(
    api: FhirTestClient, stored: dict[str, Any], asked: str, message: str
) -> None:
    for path in (f"/fhir/Patient/{stored['id']}", "/fhir/Patient", "/fhir/metadata"):
        answer = api.get(f"{path}?_format={asked}")
        assert answer.status_code == 406, (path, answer.text)
        (issue,) = answer.json()["issue"]
        assert issue["code"] == "not-supported"
        assert issue["diagnostics"] == message
