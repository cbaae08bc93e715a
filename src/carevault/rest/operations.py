"""FHIR operations that change where a patient belongs: ``Patient/$register`` and
``Patient/{id}/$transfer``. Each takes a Parameters resource; both go to the gate."""

from __future__ import annotations

from typing import Any

from carevault.fhir.elements import parse_reference
from carevault.fhir.outcome import FhirError, Issue, bad_request
from carevault.fhir.query import safe_name
from carevault.fhir.validate import parse_json
from carevault.gate import Caller
from carevault.gate.registration import PresenceProof, register, transfer
from carevault.rest import bundles
from carevault.rest.errors import translated
from carevault.rest.interactions import FhirInteractions, FhirResponse, checked_id

#: The operations this server defines, at any level (docs/rest.md; the CapabilityStatement).
DEFINED = frozenset(
    {
        "everything",
        "export",
        "export-status",
        "export-file",
        "import",
        "import-status",
        "register",
        "transfer",
        "break-glass",
        "emergency-access",
        "validate",
    }
)


def unknown_operation(name: str) -> FhirError:
    """What an operation this server does not define answers, alone or as a Bundle
    entry: 404 (R4 http.html: not a FHIR end-point here), naming it."""
    shown = safe_name(name.removeprefix("$"))
    return FhirError(
        404, [Issue("not-supported", f"this server defines no operation ${shown} here")]
    )


def parameters(body: bytes) -> dict[str, dict[str, Any]]:
    """The parameters of a Parameters resource, by name (each one's JSON object)."""
    document = parse_json(body)
    items = document.get("parameter") if isinstance(document, dict) else None
    if (
        not isinstance(document, dict)
        or document.get("resourceType") != "Parameters"
        or not isinstance(items, list)
        or not all(isinstance(item, dict) and isinstance(item.get("name"), str) for item in items)
    ):
        raise bad_request("send a Parameters resource with named parameters")
    return {item["name"]: item for item in items}


def _text(given: dict[str, dict[str, Any]], name: str, *kinds: str) -> str | None:
    item = given.get(name)
    if item is None:
        return None
    for kind in kinds:
        value = item.get(kind)
        if kind == "valueReference":
            parsed = parse_reference(value)
            if parsed is not None and parsed[0] == "Organization":
                return parsed[1]
        elif isinstance(value, str):
            return value
    raise bad_request(f"parameter '{name}' must be one of {', '.join(kinds)}")


def register_patient(
    interactions: FhirInteractions, caller: Caller, body: bytes, base: str
) -> FhirResponse:
    """The front desk registers a patient who is present at one of its clinics; answers
    with the Patient as the caller may now see it."""
    given = parameters(body)
    identifier = given.get("identifier", {}).get("valueIdentifier")
    birth_date = _text(given, "birthDate", "valueDate")
    if not isinstance(identifier, dict) or birth_date is None:
        raise bad_request("send identifier (valueIdentifier) and birthDate (valueDate)")
    system, value = identifier.get("system"), identifier.get("value")
    if not isinstance(system, str) or not isinstance(value, str):
        raise bad_request("the identifier needs a system and a value")
    clinic = _text(given, "clinic", "valueReference", "valueId")
    with translated():
        patient_id = register(
            interactions.gate, caller, PresenceProof(system, value, birth_date), clinic
        )
    return interactions.read(caller, "Patient", patient_id, base)


def transfer_patient(
    interactions: FhirInteractions, caller: Caller, patient_id: str, body: bytes
) -> FhirResponse:
    """Move a patient's home clinic (a privacy officer, or the manager of both clinics)."""
    given = parameters(body)
    destination = _text(given, "destination", "valueReference", "valueId")
    reason = _text(given, "reason", "valueCode")
    if destination is None or reason is None:
        raise bad_request("send destination (valueReference to an Organization) and reason")
    with translated():
        result = transfer(
            interactions.gate, caller, checked_id(patient_id), checked_id(destination), reason
        )
    answer = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "patient", "valueReference": {"reference": result.head.reference}},
            {"name": "clinic", "valueReference": {"reference": f"Organization/{destination}"}},
            {"name": "version", "valueId": str(result.head.version_id)},
        ],
    }
    return FhirResponse(200, bundles.dumps(answer))
