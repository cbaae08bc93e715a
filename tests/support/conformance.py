"""FHIR conformance of what the server sends, checked by a library we did not write.

fhirclient's models are strict FHIR R4: unknown elements, wrong JSON types and
missing required elements all raise.
"""

from __future__ import annotations

import json
from typing import Any

from fhirclient.models.fhirelementfactory import FHIRElementFactory


class NotConformant(AssertionError):
    pass


def check_resource(data: Any) -> None:
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        raise NotConformant(f"not a FHIR resource: {str(data)[:200]}")
    try:
        FHIRElementFactory.instantiate(data["resourceType"], data)
    except Exception as error:
        raise NotConformant(f"fhirclient (strict R4) rejected the body: {error}") from error


def check_body(content_type: str, body: bytes) -> None:
    """Every JSON body a FHIR endpoint returns must be a conformant R4 resource."""
    if not body:
        return
    if "ndjson" in content_type:
        # A Bulk Data export file: one conformant resource per line.
        for line in body.splitlines():
            check_resource(json.loads(line))
        return
    if "json" not in content_type:
        raise NotConformant(f"a FHIR endpoint answered {content_type!r}")
    data = json.loads(body)
    if isinstance(data, dict) and "transactionTime" in data and "resourceType" not in data:
        # A Bulk Data manifest is plain JSON, not a resource: its required keys.
        missing = {"transactionTime", "request", "requiresAccessToken", "output", "error"} - set(
            data
        )
        if missing:
            raise NotConformant(f"a Bulk Data manifest without {sorted(missing)}")
        return
    check_resource(data)
