"""Which ``Accept`` headers and ``_format`` values admit an R4 JSON answer."""

from __future__ import annotations

import pytest

from carevault.web.fhir_format import acceptable


@pytest.mark.parametrize(
    "asked",
    [
        "",
        "*/*",
        "application/*",
        "application/fhir+json",
        "application/json",
        "application/json+fhir",
        "json",
        "Application/FHIR+JSON; fhirVersion=4.0",
        "application/fhir+json; FHIRVERSION=4.0.1",
        'application/fhir+json; fhirVersion="4.0"',
        "application/fhir+json; fhirVersion=3.0, application/json",
        "text/html, application/fhir+json;q=0.1",
        "application/fhir+json;q=0.5",
    ],
)
def test_json_is_acceptable(asked: str) -> None:
    assert acceptable(asked)


@pytest.mark.parametrize(
    "asked",
    [
        "application/fhir+xml",
        "xml",
        "text/turtle",
        "text/html, application/xml",
        "application/fhir+json;q=0",
        "application/fhir+json; q=0.000, application/xml",
        "application/fhir+json; fhirVersion=3.0",
        "application/fhir+json; fhirVersion=4.3",
        "application/json+fhir; fhirVersion=1.0, */*; fhirVersion=5.0",
        "application/fhir+json; fhirVersion",
    ],
)
def test_no_r4_json_is_not(asked: str) -> None:
    assert not acceptable(asked)
