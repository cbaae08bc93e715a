"""Stop 65 through ``carevault import``: a line holding a government number in any
Identifier but the Patient resource's own ``identifier`` list (an extension's
``valueIdentifier``, a primitive's extension, an order's requisition) is refused by line,
with the element named and the number not quoted; the rest loads. On SQLite and
PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.fhir.normalise import HKID_SYSTEM
from carevault.fhir.registry import RESOURCE_TYPES
from tests.integration.bulk.test_import import READER, run_import

HKID = "K987654(5)"
NUMBER = {"system": HKID_SYSTEM, "value": HKID}
ALT = {"url": "http://example.org/alt-id", "valueIdentifier": NUMBER}
#: Stop 66: a Chinese passport as a feed sends it, and an HKID spelt with a dash under a
#: local system.
PASSPORT = {"system": "http://hl7.org/fhir/sid/passport-CHN", "value": "E98765432"}
SPELT = {"system": "urn:oid:2.16.344.1.99", "value": "K987654-5"}
COVERAGE = {
    "resourceType": "Coverage",
    "status": "active",
    "beneficiary": {"reference": "Patient/p1"},
    "payor": [{"display": "Insurer"}],
}
#: The numbers no answer may quote.
NUMBERS = (HKID, PASSPORT["value"], SPELT["value"], "987654")


def lines(clinic: str | None = None) -> list[dict[str, Any]]:
    """Three records to load and six to refuse (lines 2, 4, 5, 6, 7 and 8), of patients
    ``p1``, ``p2`` and ``p3`` (at ``clinic``, if given). Lines 6-8 are stop 66's: another
    country's passport, an HKID spelt with a dash under a local system, an HKID as a
    Coverage's ``subscriberId``; line 9 a Coverage with a member number."""
    managed = {"managingOrganization": {"reference": f"Organization/{clinic}"}} if clinic else {}
    subject = {"subject": {"reference": "Patient/p1"}}
    weight = {"resourceType": "Observation", "status": "final", "code": {"text": "weight"}}
    return [
        # The patient's own list keeps it.
        {"resourceType": "Patient", "id": "p1", "identifier": [NUMBER], **managed},
        {"resourceType": "Patient", "id": "p2", "extension": [ALT], **managed},
        {
            **weight,
            "id": "o1",
            **subject,
            "extension": [{**ALT, "valueIdentifier": {"value": "7"}}],
        },
        {**weight, "id": "o2", **subject, "_status": {"extension": [ALT]}},
        {
            "resourceType": "ServiceRequest",
            "id": "s1",
            "status": "active",
            "intent": "order",
            **subject,
            "requisition": NUMBER,
        },
        {
            "resourceType": "Patient",
            "id": "p3",
            "extension": [{**ALT, "valueIdentifier": PASSPORT}],
        },
        {**weight, "id": "o3", **subject, "extension": [{**ALT, "valueIdentifier": SPELT}]},
        {**COVERAGE, "id": "c1", "subscriberId": SPELT["value"]},
        {**COVERAGE, "id": "c2", "subscriberId": "MEM-0001"},
    ]


#: The element each refused line's reason names.
REFUSED = {
    2: "Patient.extension[0].valueIdentifier",
    4: "Observation._status.extension[0].valueIdentifier",
    5: "ServiceRequest.requisition",
    6: "Patient.extension[0].valueIdentifier",
    7: "Observation.extension[0].valueIdentifier",
    8: "Coverage.subscriberId",
}


def test_a_line_with_a_government_number_outside_patient_identifier_is_refused(
    services: Services, tmp_path: Path
) -> None:
    source = tmp_path / "mixed.ndjson"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines()))

    report = run_import(services, [source])

    [file] = report.files
    assert (file.accepted, file.rejected) == (3, 6)
    reasons = dict(file.rejections)
    assert set(reasons) == set(REFUSED)
    for line, element in REFUSED.items():
        assert element in reasons[line] and "Patient.identifier" in reasons[line]
        assert not any(number in reasons[line] for number in NUMBERS)
    assert services.gate.read(READER, RESOURCE_TYPES["Observation"], "o1").body is not None
    with pytest.raises(Exception):  # noqa: B017, PT011 - not found, whatever its class
        services.gate.read(READER, RESOURCE_TYPES["Patient"], "p2")
