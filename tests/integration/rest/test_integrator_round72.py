"""What the round 72 integrator met driving CareVault with httpx, authlib, fhirclient and
PyJWT against ``carevault demo`` (a backend service signing its JWT, a public app through
authorization code and PKCE): each test sends what that client sent, and states what
FHIR R4 asks instead. Each failed on the code as it stood: they were the findings (of
them, the narrative, the contained-resource and the FHIRPath ones are here; dom-3 is
still open)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.rest.test_interactions import patient
from tests.support.client import FhirTestClient

XHTML = 'xmlns="http://www.w3.org/1999/xhtml"'
NARRATIVES = {
    "script": '<div xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></div>',
    "event attribute": f'<div {XHTML}><img src="x" onerror="alert(1)"/></div>',
    "iframe": '<div xmlns="http://www.w3.org/1999/xhtml"><iframe src="https://evil.example"/></div>',
    "not xhtml": "plain words, no div at all",
}


def test_a_narrative_with_active_content_or_no_xhtml_div_is_refused(api: FhirTestClient) -> None:
    """R4 narrative-definitions.html, Narrative.div: "The XHTML content SHALL NOT contain
    a head, a body, external stylesheet references, scripts, forms, base/link/xlink,
    frames, iframes and objects", and txt-1 ("only the basic html formatting elements
    and attributes ... and internally contained style attributes": no ``on*`` event
    attributes); the xhtml type is a ``div`` in the XHTML namespace. Each of these was
    created (201) and stored, and a reader that sees narratives (the system here, a
    clinician with the care relationship) got the script back as written: an app that
    renders ``text.div``, as R4 means it to, runs it. Refused instead, naming the
    element (``Patient.text.div``)."""
    made: dict[str, str] = {}
    for what, div in NARRATIVES.items():
        body = {**patient(family=f"Narrative {what}"), "text": {"status": "generated", "div": div}}
        answer = api.post_json("/fhir/Patient", body)
        if answer.status_code == 201:
            stored = api.get(f"/fhir/Patient/{answer.json()['id']}").json()
            made[what] = stored.get("text", {}).get("div", "")
            continue
        assert answer.status_code in (400, 422), answer.text
        assert "Patient.text.div" in answer.text, answer.text
    assert made == {}, f"stored as sent: {made}"
    # Refused, nothing changed: no Patient was made, and an update of one that is
    # stored leaves it as it was.
    assert api.get("/fhir/Patient", params={"_summary": "count"}).json()["total"] == 0
    kept = api.post_json("/fhir/Patient", patient(family="Kept")).json()
    for div in NARRATIVES.values():
        sent = {**kept, "text": {"status": "generated", "div": div}}
        refused = api.put_json(f"/fhir/Patient/{kept['id']}", sent)
        assert refused.status_code in (400, 422), refused.text
    after = api.get(f"/fhir/Patient/{kept['id']}").json()
    assert after["meta"]["versionId"] == kept["meta"]["versionId"] and "text" not in after


def _observation_with(
    patient_id: str, contained: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "heart rate"},
        "subject": {"reference": f"Patient/{patient_id}"},
        **extra,
    }
    if contained:
        body["contained"] = contained
    return body


CONTAINED_INVARIANTS = {
    # dom-3: "If the resource is contained in another resource, it SHALL be referred to
    # from elsewhere in the resource or SHALL refer to the containing resource".
    "dom-3": ([{"resourceType": "Practitioner", "id": "pr1", "name": [{"family": "Orphan"}]}], {}),
    # dom-4: "If a resource is contained in another resource, it SHALL NOT have a
    # meta.versionId or a meta.lastUpdated".
    "dom-4": (
        [
            {
                "resourceType": "Practitioner",
                "id": "pr1",
                "meta": {"versionId": "3", "lastUpdated": "2020-01-01T00:00:00Z"},
            }
        ],
        {"performer": [{"reference": "#pr1"}]},
    ),
    # dom-5: "If a resource is contained in another resource, it SHALL NOT have a
    # security label" (a label that is not a sensitive one: an R label is refused, as
    # sensitive, with a 403).
    "dom-5": (
        [
            {
                "resourceType": "Practitioner",
                "id": "pr1",
                "meta": {
                    "security": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                            "code": "N",
                        }
                    ]
                },
            }
        ],
        {"performer": [{"reference": "#pr1"}]},
    ),
    # ref-1: "SHALL have a contained resource if a local reference is provided".
    "ref-1": ([], {"performer": [{"reference": "#nothere"}]}),
}


#: dom-3 is left open: clinic apps (and this project's own tests) keep contained
#: resources nothing refers to, a result inside a Patient (fhir/contained.py). ref-1 is
#: judged on the record as the gate will store it, what the caller was not shown put back.
_DOM_3_OPEN = pytest.mark.xfail(
    strict=True, reason="dom-3: writers of unreferenced contained resources are told first"
)


@pytest.mark.parametrize(
    "invariant",
    [
        pytest.param(name, marks=_DOM_3_OPEN) if name == "dom-3" else name
        for name in CONTAINED_INVARIANTS
    ],
)
def test_contained_resources_that_break_r4_invariants_are_refused(
    api: FhirTestClient, invariant: str
) -> None:
    """R4 DomainResource dom-3, dom-4 and dom-5, and Reference ref-1 (quoted above each case):
    each Observation here breaks one, and each was created (201), so a reader (and every
    export) gets back a resource that R4 validators reject. The README promises that bad
    input "gets an OperationOutcome and changes nothing": 400 or 422 naming the element."""
    created = api.post_json("/fhir/Patient", patient())
    assert created.status_code == 201, created.text
    patient_id = created.json()["id"]
    accepted = []
    contained, extra = CONTAINED_INVARIANTS[invariant]
    answer = api.post_json("/fhir/Observation", _observation_with(patient_id, contained, **extra))
    if answer.status_code == 201:
        accepted.append(invariant)
    else:
        assert answer.status_code in (400, 422), (invariant, answer.text)
    assert accepted == [], f"created despite breaking {accepted}"


def test_an_error_names_the_element_as_fhirpath_with_its_index_in_brackets(
    api: FhirTestClient,
) -> None:
    """R4 OperationOutcome.issue.expression: "A simple subset of FHIRPath limited to
    element names, repetition indicators and the default child accessor". Most errors
    say ``Patient.name[0].family``; those raised by the model check (validate.py
    ``_issue``: the pydantic location joined with ``.``) said ``Patient.photo.0.data`` and
    ``Patient.extension.0.valueFoo``, which is no FHIRPath (``0`` is no element name): a
    client that maps expressions back to its form fields, or evaluates them, finds
    nothing there."""
    cases = {
        "Patient.photo[0].data": {"photo": [{"data": "abc!!"}]},
        "Patient.extension[0].valueFoo": {"extension": [{"url": "http://x", "valueFoo": "y"}]},
    }
    for wanted, extra in cases.items():
        answer = api.post_json("/fhir/Patient", {**patient(), **extra})
        assert answer.status_code == 400, answer.text
        expressions = [e for issue in answer.json()["issue"] for e in issue.get("expression", [])]
        assert expressions == [wanted], answer.text


def test_validate_names_a_local_reference_to_nothing_contained(api: FhirTestClient) -> None:
    """``$validate`` answers as a create would: a create judges R4 ref-1 in the gate (on
    the record as it will be stored), which the checks before the gate leave out, so
    ``$validate`` said "no issues found" of an Observation its create then refused."""
    created = api.post_json("/fhir/Patient", patient())
    assert created.status_code == 201, created.text
    contained, extra = CONTAINED_INVARIANTS["ref-1"]
    body = _observation_with(created.json()["id"], contained, **extra)

    answered = api.post_json("/fhir/Observation/$validate", body)
    refused = api.post_json("/fhir/Observation", body)

    assert answered.status_code == 200, answered.text
    [issue] = answered.json()["issue"]
    assert issue["severity"] == "error" and "ref-1" in issue["diagnostics"]
    assert issue["expression"] == ["Observation.performer[0].reference"]
    assert refused.status_code == 400, refused.text
    assert refused.json()["issue"] == answered.json()["issue"]
    resolved = _observation_with(
        created.json()["id"],
        [{"resourceType": "Practitioner", "id": "nothere", "name": [{"family": "Chan"}]}],
        **extra,
    )
    fine = api.post_json("/fhir/Observation/$validate", resolved)
    assert [issue["severity"] for issue in fine.json()["issue"]] == ["information"]
