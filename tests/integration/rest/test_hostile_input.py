"""Input an attacker sends to break, fill or confuse the store (issue 9, "Low"): each is
refused with an OperationOutcome naming the element, changes nothing, and never costs a
500, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from carevault.bootstrap import Services, build_services
from carevault.gate import Caller
from carevault.web.app import create_app
from carevault.web.security import caller
from tests.conftest import make_settings
from tests.integration.rest.test_interactions import HKID_SYSTEM, create, observation, patient
from tests.support.client import FHIR_JSON, FhirTestClient
from tests.support.snapshot import snapshot

FULL_WIDTH = str.maketrans(
    {chr(code): chr(code + 0xFEE0) for code in range(0x21, 0x7F)} | {" ": "\u3000"}
)


def _patient_with(**changes: Any) -> dict[str, Any]:
    return {**patient(), **changes}


def _observation_value(value: str) -> bytes:
    """An Observation whose valueQuantity.value is the raw JSON number text ``value``."""
    body = json.dumps(observation("{patient}", "2024-01-01"))
    return body.replace('"value": 120', f'"value": {value}').encode()


def _nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


REFUSED_WRITES: dict[str, tuple[str, Any, int, str]] = {
    # name → (path, body: dict or raw bytes with {patient}, status, element named)
    "an HKID that is not one": (
        "/fhir/Patient",
        _patient_with(identifier=[{"system": HKID_SYSTEM, "value": "not-an-hkid"}]),
        422,
        "Patient.identifier[0].value",
    ),
    "an HKID with a wrong check digit": (
        "/fhir/Patient",
        _patient_with(identifier=[{"system": HKID_SYSTEM, "value": "A123456(4)"}]),
        422,
        "Patient.identifier[0].value",
    ),
    "a NUL byte in a name": (
        "/fhir/Patient",
        _patient_with(name=[{"family": "Chan\u0000DROP", "given": ["Tai Man"]}]),
        422,
        "Patient.name[0].family",
    ),
    "an escape sequence in a phone number": (
        "/fhir/Patient",
        _patient_with(telecom=[{"system": "phone", "value": "9123\u001b[2J4567"}]),
        422,
        "Patient.telecom[0].value",
    ),
    "a lone surrogate": (
        "/fhir/Patient",
        b'{"resourceType":"Patient","name":[{"family":"Chan\\ud800"}]}',
        422,
        "Patient.name[0].family",
    ),
    "a control character in an element hidden under _birthDate": (
        "/fhir/Patient",
        _patient_with(
            _birthDate={"extension": [{"url": "http://example.org/x", "valueString": "a\u0007"}]}
        ),
        422,
        "Patient._birthDate.extension[0].valueString",
    ),
    "a 4 MB name": (
        "/fhir/Patient",
        _patient_with(name=[{"family": "C" * (4 * 1024 * 1024)}]),
        422,
        "Patient.name[0].family",
    ),
    "a 300-character identifier value": (
        "/fhir/Patient",
        _patient_with(identifier=[{"system": "http://carevault.hk/sid/mrn", "value": "9" * 300}]),
        422,
        "Patient.identifier[0].value",
    ),
    "a 100 KB narrative": (
        "/fhir/Patient",
        _patient_with(
            text={
                "status": "generated",
                "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{"x" * 100_000}</div>',
            }
        ),
        422,
        "Patient.text.div",
    ),
    "a 4,000-digit decimal": (
        "/fhir/Observation",
        _observation_value("1." + "3" * 4000),
        422,
        "Observation.valueQuantity.value",
    ),
    "a 4,000-digit integer where a decimal goes": (
        "/fhir/Observation",
        _observation_value("7" * 4000),
        422,
        "Observation.valueQuantity.value",
    ),
    "a decimal beyond what a double holds": (
        "/fhir/Observation",
        _observation_value("1e999999"),
        422,
        "Observation.valueQuantity.value",
    ),
    "effectiveDateTime 9999-12-31": (
        "/fhir/Observation",
        {**observation("{patient}", "9999-12-31T00:00:00Z")},
        422,
        "Observation.effectiveDateTime",
    ),
    "a birth date in the year 1": (
        "/fhir/Patient",
        _patient_with(birthDate="0001-01-01"),
        422,
        "Patient.birthDate",
    ),
    "10,000-level nesting in a resource": ("/fhir/Patient", _nested(10_000), 400, ""),
    "10,000-level nesting in a Bundle": ("/fhir", _nested(10_000), 400, ""),
    "10,000-level nesting to $break-glass": (
        "/fhir/Patient/{patient}/$break-glass",
        _nested(10_000),
        400,
        "",
    ),
    "a NUL byte in a break-the-glass reason": (
        "/fhir/Patient/{patient}/$break-glass",
        {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "reason", "valueCode": "emergency"},
                {"name": "text", "valueString": "seen in A&E\u0000; DELETE"},
            ],
        },
        422,
        "Parameters.parameter(text)",
    ),
    "a Bundle of 501 entries": (
        "/fhir",
        {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{"request": {"method": "GET", "url": "Patient"}}] * 501,
        },
        400,
        "",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED_WRITES))
def test_hostile_write_is_refused_naming_the_element_and_changes_nothing(
    api: FhirTestClient, services: Services, case: str
) -> None:
    someone = create(api, patient())
    path, body, status, element = REFUSED_WRITES[case]
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    raw = raw.replace(b"{patient}", someone["id"].encode())
    before = snapshot(services)
    response = api.post(path.format(patient=someone["id"]), content=raw, headers=FHIR_JSON)
    assert response.status_code == status, response.text[:500]
    issues = response.json()["issue"]
    assert all(issue["severity"] == "error" for issue in issues)
    if element:
        assert element in issues[0]["expression"], issues
        assert element in issues[0]["diagnostics"]
    # Nothing of the value comes back: not the name, not the digits.
    assert "DROP" not in response.text and "not-an-hkid" not in response.text
    assert "3333333333" not in response.text and "7777777777" not in response.text
    assert snapshot(services) == before


@pytest.mark.parametrize(
    "query",
    [
        "Patient?birthdate=9999-12-31",
        "Patient?birthdate=0001-01-01",
        "Patient?birthdate=ge9999",
        "Observation?date=9999-12-31",
        "Observation?date=lt0001-01-01T00:00:00Z",
        "Patient?_lastUpdated=9999-12-31",
        "Patient?_lastUpdated=ge0001-01-01",
        "Observation?_lastUpdated=le9999-12-31T23:59:59Z",
    ],
)
def test_dates_outside_the_store_are_refused_in_searches(api: FhirTestClient, query: str) -> None:
    someone = create(api, patient())
    create(api, observation(someone["id"], "2024-01-01"))
    response = api.get(f"/fhir/{query}")
    assert response.status_code == 400, response.text
    issue = response.json()["issue"][0]
    assert issue["code"] == "invalid" and "1000 to 8999" in issue["diagnostics"]


def test_the_same_hkid_in_full_width_digits_is_found_by_hkid_search(
    api: FhirTestClient,
) -> None:
    """A second registration typed with a Chinese input method must not hide the first."""
    first = create(api, patient())
    typed = "A123456(3)".translate(FULL_WIDTH)
    assert typed == "Ａ１２３４５６（３）"
    second = create(
        api,
        _patient_with(identifier=[{"system": HKID_SYSTEM, "value": typed}], name=[{"text": "陳"}]),
    )
    assert second["identifier"][0]["value"] == typed  # stored as sent, indexed folded
    for value in (
        f"{HKID_SYSTEM}|A123456(3)",
        f"{HKID_SYSTEM}|{typed}",
        "a1234563",
        "Ａ １２３４５６ （３）".translate(FULL_WIDTH),
        " A 123456 (3) ",
    ):
        found = api.get("/fhir/Patient", params={"identifier": value}).json()
        ids = {entry["resource"]["id"] for entry in found.get("entry", [])}
        assert ids == {first["id"], second["id"]}, value


def test_the_bundle_limit_is_the_configured_one(tmp_path: Path) -> None:
    """CAREVAULT_MAX_BUNDLE_ENTRIES bounds both batch and transaction (refused before any
    entry is looked at, so one backend shows it)."""
    settings = make_settings(tmp_path / "home", max_bundle_entries=2)
    services = build_services(settings, create_keys=True, migrate=True)
    app = create_app(settings, services)
    app.dependency_overrides[caller] = lambda: Caller(principal="system:test")
    try:
        with FhirTestClient(app) as api:
            for kind in ("batch", "transaction"):
                entries = [{"request": {"method": "GET", "url": "Patient?_count=1"}}]
                bundle = {"resourceType": "Bundle", "type": kind}
                assert api.post_json("/fhir", {**bundle, "entry": entries * 2}).status_code == 200
                refused = api.post_json("/fhir", {**bundle, "entry": entries * 3})
                assert refused.status_code == 400
                assert refused.json()["issue"][0]["code"] == "too-costly"
                assert "at most 2 entries" in refused.text
    finally:
        services.close()
