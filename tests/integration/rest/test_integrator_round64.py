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


def _total(api: FhirTestClient, url: str) -> int:
    answer = api.get(url)
    assert answer.status_code == 200, (url, answer.text)
    body = answer.json()
    return int(body["total"]) if "total" in body else len(body.get("entry", []))


def test_a_date_whose_offset_plus_was_not_escaped_is_the_instant_meant(
    api: FhirTestClient, stored: dict[str, Any]
) -> None:
    """``Patient?_lastUpdated=gt2000-01-01T08:00:00+08:00`` (Hong Kong's offset, the
    ``+`` typed as is) was ``400`` "_lastUpdated: not a FHIR date, dateTime or instant",
    and ``_history?_since=...+08:00`` ``400`` "_since must be a FHIR date or dateTime":
    the query string had made the ``+`` a space. Round 60 read it so for ``$export``'s
    ``_since`` only. Now every date read from a query (search parameters,
    ``_lastUpdated``, a history's ``_since``, ``$everything``'s ``start``) is: each
    answers as the same URL with ``%2B``."""
    identity = stored["id"]
    before, after = "2000-01-01T08:00:00", "2999-01-01T08:00:00"
    for path in (
        "/fhir/Patient?_lastUpdated=gt{}",
        "/fhir/Patient?_lastUpdated=lt{}",
        f"/fhir/Patient?_id={identity}&_lastUpdated=ge{{}}",
        f"/fhir/Patient/{identity}/_history?_since={{}}",
        "/fhir/Patient/_history?_since={}",
        "/fhir/_history?_since={}",
        f"/fhir/Patient/{identity}/$everything?start={{}}",
    ):
        for moment in (before, after):
            unescaped = path.format(f"{moment}+08:00")
            escaped = path.format(f"{moment}%2B08:00")
            assert _total(api, unescaped) == _total(api, escaped), unescaped
    assert _total(api, f"/fhir/Patient?_id={identity}&_lastUpdated=gt{before}+08:00") == 1
    assert _total(api, f"/fhir/Patient/{identity}/_history?_since={before}+08:00") == 1
    assert _total(api, f"/fhir/Patient/{identity}/_history?_since={after}+08:00") == 0

    # A batch's search entry reads it as the search alone.
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "request": {
                    "method": "GET",
                    "url": f"Patient?_id={identity}&_lastUpdated=gt{before}+08:00",
                }
            }
        ],
    }
    (entry,) = api.post("/fhir", json=batch).json()["entry"]
    assert entry["resource"]["total"] == 1, entry


@pytest.mark.parametrize(
    "value",
    ["gt2000-01-01 08:00", "gt2000-01-01T08:00:00 08", "gt2000-01-01T08:00:00  08:00"],
)
def test_a_space_anywhere_but_an_offsets_sign_is_still_refused(
    api: FhirTestClient, value: str
) -> None:
    answer = api.get(f"/fhir/Patient?_lastUpdated={value}")
    assert answer.status_code == 400, answer.text
    (issue,) = answer.json()["issue"]
    assert issue["diagnostics"] == "_lastUpdated: not a FHIR date, dateTime or instant"
