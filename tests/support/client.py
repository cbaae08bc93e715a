"""An in-process client that checks every FHIR response body for conformance."""

from __future__ import annotations

import json
from typing import Any

from starlette.testclient import TestClient

from tests.support.conformance import check_body

FHIR_JSON = {"content-type": "application/fhir+json"}


class FhirTestClient(TestClient):
    """A TestClient whose every /fhir response body must parse with fhirclient's strict models."""

    checked = 0

    def request(self, method: str, url: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        response = super().request(method, url, *args, **kwargs)
        if "/fhir" in str(url) and "/.well-known/" not in str(url):
            check_body(response.headers.get("content-type", ""), response.content)
            FhirTestClient.checked += 1
        return response

    def post_json(self, url: str, body: Any, **headers: str) -> Any:
        return self.post(url, content=json.dumps(body), headers={**FHIR_JSON, **headers})

    def put_json(self, url: str, body: Any, **headers: str) -> Any:
        return self.put(url, content=json.dumps(body), headers={**FHIR_JSON, **headers})


def register_patient(
    web: FhirTestClient,
    officer: dict[str, str],
    desk: dict[str, str],
    clinic_id: str,
    family: str,
    given: str,
) -> str:
    """The clinic's Organization put by the officer (as it already is, if it was), and
    a new patient of that clinic registered by its front desk: the patient's id."""
    web.put_json(
        f"/fhir/Organization/{clinic_id}",
        {"resourceType": "Organization", "id": clinic_id, "name": clinic_id},
        **officer,
    )
    created = web.post_json(
        "/fhir/Patient",
        {
            "resourceType": "Patient",
            "name": [{"family": family, "given": [given]}],
            "managingOrganization": {"reference": f"Organization/{clinic_id}"},
        },
        **desk,
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def transfer_body(destination: str, reason: str = "patient-moved") -> dict[str, Any]:
    """A ``Patient/[id]/$transfer`` request's Parameters: to the clinic ``destination``."""
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "destination", "valueReference": {"reference": f"Organization/{destination}"}},
            {"name": "reason", "valueCode": reason},
        ],
    }
