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


def lines(clinic: str | None = None) -> list[dict[str, Any]]:
    """Two records to load and three to refuse (lines 2, 4 and 5), of patients ``p1``
    and ``p2`` (at ``clinic``, if given)."""
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
    ]


#: The element each refused line's reason names.
REFUSED = {
    2: "Patient.extension[0].valueIdentifier",
    4: "Observation._status.extension[0].valueIdentifier",
    5: "ServiceRequest.requisition",
}


def test_a_line_with_a_government_number_outside_patient_identifier_is_refused(
    services: Services, tmp_path: Path
) -> None:
    source = tmp_path / "mixed.ndjson"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines()))

    report = run_import(services, [source])

    [file] = report.files
    assert (file.accepted, file.rejected) == (2, 3)
    reasons = dict(file.rejections)
    assert set(reasons) == set(REFUSED)
    for line, element in REFUSED.items():
        assert element in reasons[line] and "Patient.identifier" in reasons[line]
        assert HKID not in reasons[line]
    assert services.gate.read(READER, RESOURCE_TYPES["Observation"], "o1").body is not None
    with pytest.raises(Exception):  # noqa: B017, PT011 - not found, whatever its class
        services.gate.read(READER, RESOURCE_TYPES["Patient"], "p2")
