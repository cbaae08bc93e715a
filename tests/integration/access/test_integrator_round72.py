"""A SMART backend service (PyJWT, RS384) as the round 72 integrator drove it: what it is
told when a resource it writes is malformed in a way R4 names."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from carevault.bootstrap import Services
from tests.integration.access import backend_service
from tests.integration.access.browser import bearer
from tests.integration.access.conftest import CLINIC, MovableClock
from tests.support.client import FhirTestClient

SERVICE = "int72-feed"
KID = "k72"


@pytest.fixture
def headers(
    web: FhirTestClient,
    auth_services: Services,
    private_key: rsa.RSAPrivateKey,
    clock: MovableClock,
) -> dict[str, str]:
    backend_service.register(
        auth_services, private_key, SERVICE, "Round 72 feed", "system/*.cruds", KID
    )
    answer = backend_service.token(web, private_key, clock, SERVICE, KID, "system/*.cruds")
    assert answer.status_code == 200, answer.text
    return bearer(answer.json()["access_token"])


def _observation(patient_id: str, practitioner: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "heart rate"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "performer": [{"reference": "#pr1"}],
        "contained": [{"resourceType": "Practitioner", "id": "pr1", **practitioner}],
    }


@pytest.mark.parametrize(
    ("invariant", "practitioner"),
    [
        # fhir/categories.py contained_categories: "a resource contained in a contained
        # one, which FHIR forbids" is judged sensitive_clinical, then refused as a write
        # the role may not make.
        # dom-2: "If the resource is contained in another resource, it SHALL NOT contain
        # nested Resources".
        ("dom-2", {"contained": [{"resourceType": "Organization", "id": "o1"}]}),
    ],
)
def test_a_malformed_contained_resource_is_answered_as_malformed_not_as_forbidden(
    web: FhirTestClient, headers: dict[str, str], invariant: str, practitioner: dict[str, Any]
) -> None:
    """A lab feed whose Observation carries a contained performer that breaks R4's
    dom-2 got ``403 forbidden`` "integration may not write sensitive_clinical":
    the integrator reads it as a permissions problem to take to the privacy office, and
    nothing tells them the resource itself is invalid (R4 http.html: 400 "failed basic
    FHIR validation rules", 422 "violated applicable FHIR profiles"). The write must
    still fail, as 400/422 naming ``Observation.contained``."""
    made = web.post(
        "/fhir/Patient",
        json={
            "resourceType": "Patient",
            "name": [{"family": "Roundseventytwo"}],
            "managingOrganization": {"reference": f"Organization/{CLINIC}"},
        },
        headers=headers,
    )
    assert made.status_code == 201, made.text
    answer = web.post(
        "/fhir/Observation",
        json=_observation(made.json()["id"], practitioner),
        headers=headers,
    )
    assert answer.status_code in (400, 422), (invariant, answer.status_code, answer.text)
    assert "Observation.contained" in answer.text, answer.text
