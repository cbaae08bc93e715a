"""What a JavaScript clinic app on fhir-kit-client met (integrator round 62): a
compartment search, which this server does not offer, answered as "no such record"."""

from __future__ import annotations

import pytest

from tests.integration.rest.test_interactions import create, patient
from tests.support.client import FhirTestClient

FORM = {"content-type": "application/x-www-form-urlencoded"}


def test_a_compartment_search_says_it_is_not_offered_never_that_the_patient_is_missing(
    api: FhirTestClient,
) -> None:
    """fhir-kit-client's ``search({resourceType, compartment})`` sends R4's compartment
    search, ``GET [base]/Patient/[id]/Observation``. The CapabilityStatement lists no
    compartment, so a 404 is this server's to give; but it came as Starlette's bare
    ``not-found`` "Not Found", which says the patient is not there. Now it is
    ``not-supported``, naming what to search instead, alike for a patient who exists
    and an id never used (nothing is read), with every method and by ``_search``."""
    someone = create(api, patient())["id"]
    answers = []
    for owner in (someone, "never-used"):
        for method, path, extra in (
            ("GET", f"/fhir/Patient/{owner}/Observation", {}),
            ("GET", f"/fhir/Patient/{owner}/Observation?code=8867-4", {}),
            ("POST", f"/fhir/Patient/{owner}/Observation/_search", FORM),
            ("DELETE", f"/fhir/Patient/{owner}/Observation", {}),
        ):
            answer = api.request(method, path, headers=extra)
            assert answer.status_code == 404, (method, path, answer.text)
            assert "allow" not in answer.headers
            (issue,) = answer.json()["issue"]
            assert issue["code"] == "not-supported", (method, path)
            assert "compartment search" in issue["diagnostics"]
            assert "Observation" in issue["diagnostics"]
            assert owner not in issue["diagnostics"]
            answers.append((method, issue["diagnostics"]))
    assert answers[:4] == answers[4:]
    assert api.head(f"/fhir/Patient/{someone}/Observation").status_code == 404


@pytest.mark.parametrize(
    "path",
    ["/fhir/Patient/{id}/_history", "/fhir/Patient/{id}/$everything", "/fhir/Patient/{id}"],
)
def test_the_paths_beside_a_compartment_are_served_as_before(
    api: FhirTestClient, path: str
) -> None:
    someone = create(api, patient())["id"]
    assert api.get(path.format(id=someone)).status_code == 200


def test_a_search_across_all_types_says_it_is_not_offered(api: FhirTestClient) -> None:
    """fhir-kit-client's ``search({searchParams})`` with no type sends R4's search across
    all types as ``GET [base]/?_id=...``, and with ``postSearch`` as ``POST
    [base]/_search`` with a form. The CapabilityStatement lists no ``search-system``.
    The GET was answered Starlette's "Method Not Allowed"; the POST was read as a create
    of a type named ``_search`` and answered 415 "send application/fhir+json", so a
    client was told to send the form as FHIR JSON. Both now say no such search is
    offered: the GET keeps its 405 with ``Allow: POST`` (the base takes batches and
    transactions), the POST is 404 ``not-supported`` as any path this server does not
    serve; neither reads anything."""
    someone = create(api, patient())["id"]
    for path in ("/fhir", "/fhir/"):
        answer = api.get(f"{path}?_id={someone}")
        assert answer.status_code == 405, answer.text
        assert answer.headers["allow"] == "POST"
        (issue,) = answer.json()["issue"]
        assert issue["code"] == "not-supported"
        assert "no search across all types" in issue["diagnostics"]
        assert someone not in issue["diagnostics"]
    for headers, body in ((FORM, f"_id={someone}".encode()), ({}, b"")):
        answer = api.post("/fhir/_search", content=body, headers=headers)
        assert answer.status_code == 404, answer.text
        assert "allow" not in answer.headers
        (issue,) = answer.json()["issue"]
        assert issue["code"] == "not-supported"
        assert "no search across all types" in issue["diagnostics"]
    assert api.get("/fhir/_search").status_code == 404
    # Other 405s name the method and what the base takes (test_routing_refusals.py); a
    # type's own search is served as before.
    assert api.put("/fhir").json()["issue"][0]["diagnostics"] == (
        "PUT is not supported at this path, which takes POST"
    )
    assert (
        api.post("/fhir/Patient/_search", content=f"_id={someone}", headers=FORM).json()["total"]
        == 1
    )
