"""A reference search by absolute URL (integrator round 72): at this server's base it
names the record it locates here; at another server's base it names nothing here and is
refused, where it used to match this server's record of the same id."""

from __future__ import annotations

from typing import Any

from tests.integration.rest.test_interactions import patient
from tests.support.client import FhirTestClient

BASE = "http://testserver/fhir"


def _result(patient_id: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "heart rate"},
        "subject": {"reference": f"Patient/{patient_id}"},
    }


def test_an_absolute_reference_at_this_base_matches_and_another_servers_is_refused(
    api: FhirTestClient,
) -> None:
    made = api.post_json("/fhir/Patient", patient()).json()["id"]
    other = api.post_json("/fhir/Patient", patient(family="Other", hkid="B123456(6)")).json()["id"]
    assert api.post_json("/fhir/Observation", _result(made)).status_code == 201

    for name in ("patient", "subject"):
        here = api.get("/fhir/Observation", params={name: f"{BASE}/Patient/{made}"})
        assert here.status_code == 200 and here.json()["total"] == 1, (name, here.text)
    both = api.get("/fhir/Observation", params={"subject": f"{BASE}/Patient/{made},{other}"})
    assert both.json()["total"] == 1, both.text
    # The page's own link keeps the criteria, made relative.
    (self_link,) = [link for link in both.json()["link"] if link["relation"] == "self"]
    assert f"subject=Patient%2F{made}%2C{other}" in self_link["url"], self_link

    for name in ("patient", "subject"):
        for value in (
            f"http://other.example/fhir/Patient/{made}",
            f"{BASE}-evil/Patient/{made}",
            f"Patient/{other},http://other.example/fhir/Patient/{made}",
            # Escaped, or with no scheme (the review): the same other server.
            f"http:\\/\\/other.example/fhir/Patient/{made}",
            f"http:/other.example/fhir/Patient/{made}",
        ):
            elsewhere = api.get("/fhir/Observation", params={name: value})
            assert elsewhere.status_code == 400, (name, value, elsewhere.text)
            outcome = elsewhere.json()
            assert outcome["resourceType"] == "OperationOutcome"
            assert "another server" in outcome["issue"][0]["diagnostics"]
            assert made not in elsewhere.text
        for value in (
            f"//other.example/fhir/Patient/{made}",
            f"other.example/fhir/Patient/{made}",
            f"fhir/Patient/{made}",
        ):
            no_scheme = api.get("/fhir/Observation", params={name: value})
            assert no_scheme.status_code == 400, (name, value, no_scheme.text)


def test_conditional_criteria_with_an_absolute_reference_are_refused(
    api: FhirTestClient,
) -> None:
    """Criteria name one record and know no base: an absolute reference is refused,
    never read as whichever local record shares its id."""
    made = api.post_json("/fhir/Patient", patient()).json()["id"]
    answer = api.post_json(
        "/fhir/Observation",
        _result(made),
        **{"If-None-Exist": f"subject=http://other.example/fhir/Patient/{made}"},
    )
    assert answer.status_code == 400, answer.text
    assert api.get("/fhir/Observation", params={"subject": f"Patient/{made}"}).json()["total"] == 0
