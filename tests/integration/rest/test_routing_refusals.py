"""What the router refuses under the FHIR base, as an integrator's FHIR client meets it
(fhir-kit-client, fhirpy): a path no route serves, and a method a path does not take.

They were OperationOutcomes carrying Starlette's bare words ("Not Found", "Method Not
Allowed"), which told a client neither what the server serves nor what to send; and a
method a known end-point does not take (``DELETE /fhir/metadata``) was read as a
conditional write of a type named ``metadata`` (404 "resource type 'metadata' is not
supported", or 415 asking for a patch body). Now: 404 ``not-found`` saying there is no
FHIR end-point at the path, naming no part of it; 405 ``not-supported`` naming the
method and what the path takes, with ``Allow``. Authentication comes where it came
(a write's 401 before its 405); paths outside the base keep their answers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from httpx import Response

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.web.app import create_app
from tests.integration.rest.test_interactions import create, patient
from tests.support.client import FHIR_JSON, FhirTestClient
from tests.support.staff import make_staff

FHIR = "application/fhir+json"
JSON_PATCH = {"content-type": "application/json-patch+json"}
A_PATCH = json.dumps([{"op": "replace", "path": "/active", "value": False}])
NO_END_POINT = "this server has no FHIR end-point at this path"


def refused(answer: Response, status: int, code: str) -> str:
    """The one issue's diagnostics of a FHIR refusal ``answer`` with ``status``."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(FHIR)
    body = answer.json()
    assert body["resourceType"] == "OperationOutcome"
    (issue,) = body["issue"]
    assert issue["severity"] == "error"
    assert issue["code"] == code
    diagnostics: str = issue["diagnostics"]
    return diagnostics


def stored_patients(api: FhirTestClient) -> list[tuple[str, str]]:
    """Every patient in the store, with its version."""
    bundle = api.get("/fhir/Patient?_count=100").json()
    return sorted(
        (entry["resource"]["id"], entry["resource"]["meta"]["versionId"])
        for entry in bundle.get("entry", [])
    )


@pytest.mark.parametrize(
    "path",
    [
        "/fhir/Patient/{id}/y/z/w",
        "/fhir/Patient/{id}/_history/1/more",
        "/fhir/Patient/{id}/Observation/x/y",
        "/fhir/metadata/x/y",
    ],
)
def test_a_path_no_route_serves_is_a_fhir_not_found_that_never_names_or_reads_the_id(
    api: FhirTestClient, path: str
) -> None:
    """R4 http.html: 404 for what is "not a FHIR end-point". It was ``not-found`` "Not
    Found", which a client reads as "no such patient"; now it says no end-point is
    there, word for word alike for a patient who exists and an id never used."""
    someone = create(api, patient())["id"]
    said = []
    for owner in (someone, "never-used"):
        for method in ("GET", "POST", "DELETE"):
            answer = api.request(method, path.format(id=owner))
            diagnostics = refused(answer, 404, "not-found")
            assert diagnostics.startswith(NO_END_POINT)
            assert owner not in diagnostics
            assert "allow" not in answer.headers
            said.append(diagnostics)
    assert len(set(said)) == 1
    assert api.head(path.format(id=someone)).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/fhir", "POST"),
        ("DELETE", "/fhir/", "POST"),
        ("OPTIONS", "/fhir/metadata", "GET, HEAD"),
        ("POST", "/fhir/Patient/{id}", "GET, HEAD, PUT, PATCH, DELETE"),
        ("DELETE", "/fhir/Patient/{id}/_history", "GET, HEAD"),
        ("PUT", "/fhir/Patient/{id}/_history/1", "GET, HEAD"),
        ("GET", "/fhir/Patient/$register", "POST"),
        ("POST", "/fhir/.well-known/smart-configuration", "GET, HEAD"),
    ],
)
def test_a_method_a_path_does_not_take_is_a_405_naming_what_it_takes(
    api: FhirTestClient, method: str, path: str, allowed: str
) -> None:
    """It was ``not-supported`` "Method Not Allowed": now the method and the path's
    methods are named, the ``Allow`` header kept (RFC 9110 15.5.6)."""
    someone = create(api, patient())["id"]
    answer = api.request(method, path.format(id=someone), content=b"{}", headers=FHIR_JSON)
    diagnostics = refused(answer, 405, "not-supported")
    assert answer.headers["allow"] == allowed
    assert diagnostics == f"{method} is not supported at this path, which takes {allowed}"
    assert someone not in diagnostics


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "POST"])
@pytest.mark.parametrize("path", ["/fhir/metadata", "/fhir/OperationDefinition/import"])
def test_a_write_of_an_end_point_that_takes_none_is_a_405_not_a_type_refusal(
    api: FhirTestClient, method: str, path: str
) -> None:
    """``PATCH /fhir/metadata`` was read as a conditional patch of a type named
    ``metadata``: 415 asking for a patch body (with none), 404 "resource type 'metadata'
    is not supported" with one. ``OPTIONS`` of the path said ``Allow: GET, HEAD``; every
    method it does not list now answers the 405 it names, whatever the body."""
    for headers, body in ((JSON_PATCH, A_PATCH), (FHIR_JSON, json.dumps(patient())), ({}, "")):
        answer = api.request(method, path, content=body, headers=headers)
        diagnostics = refused(answer, 405, "not-supported")
        assert answer.headers["allow"] == "GET, HEAD"
        assert diagnostics == f"{method} is not supported at this path, which takes GET, HEAD"


def test_a_put_of_a_type_is_a_conditional_update_and_without_criteria_is_refused(
    api: FhirTestClient,
) -> None:
    """``PUT [type]`` is no wrong method: R4's conditional update is ``PUT
    [type]?[criteria]``, so it keeps its answers (400 with no criteria, 415 with no FHIR
    body); none of them writes."""
    create(api, patient())
    before = stored_patients(api)
    no_criteria = api.put_json("/fhir/Patient", patient(family="Wong"))
    assert "search criteria" in refused(no_criteria, 400, "invalid")
    refused(api.put("/fhir/Patient"), 415, "not-supported")
    assert stored_patients(api) == before


def test_head_where_a_path_takes_it_is_answered_as_before(api: FhirTestClient) -> None:
    someone = create(api, patient())["id"]
    for path in ("/fhir/metadata", f"/fhir/Patient/{someone}", "/fhir/Patient?family=Chan"):
        answer = api.head(path)
        assert answer.status_code == 200, path
        assert answer.content == b""
    refusal = api.head("/fhir/$export")
    assert (refusal.status_code, refusal.headers["allow"], refusal.content) == (
        405,
        "GET, POST",
        b"",
    )


def test_no_refusal_of_the_router_reads_or_writes_a_record(api: FhirTestClient) -> None:
    someone = create(api, patient())["id"]
    before = stored_patients(api)
    body = json.dumps(patient(family="Lee"))
    for method, path in (
        ("POST", f"/fhir/Patient/{someone}"),
        ("PUT", "/fhir"),
        ("PUT", f"/fhir/Patient/{someone}/x/y"),
        ("POST", f"/fhir/Patient/{someone}/x/y"),
        ("PUT", "/fhir/metadata"),
        ("POST", "/fhir/metadata"),
        ("DELETE", "/fhir/metadata"),
        ("PATCH", "/fhir/metadata"),
    ):
        answer = api.request(method, path, content=body, headers=FHIR_JSON)
        assert answer.status_code in (404, 405), (method, path, answer.text)
    assert stored_patients(api) == before


@pytest.mark.parametrize(
    ("method", "path", "status", "text"),
    [
        ("GET", "/fhirx", 404, "Not Found"),
        ("GET", "/auth/nonsense", 404, "Not Found"),
        ("GET", "/verify/nonsense", 404, "Not Found"),
        ("GET", "/admin/nonsense", 404, "Not Found"),
        ("DELETE", "/healthz", 405, "Method Not Allowed"),
    ],
)
def test_paths_outside_the_base_keep_their_answers(
    api: FhirTestClient, method: str, path: str, status: int, text: str
) -> None:
    answer = api.request(method, path)
    assert answer.status_code == status
    assert answer.json()["issue"][0]["diagnostics"] == text


def test_the_console_and_the_token_endpoint_keep_their_own_refusals(
    api: FhirTestClient,
) -> None:
    page = api.get("/console/nonsense")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    oauth = api.put("/auth/token")
    assert (oauth.status_code, oauth.headers["allow"]) == (405, "POST")
    assert oauth.json()["error"] == "invalid_request"


@pytest.fixture
def web(services: Services) -> Iterator[tuple[FhirTestClient, dict[str, str]]]:
    """The app as served, tokens checked: a client and a signed-in officer's headers."""
    staff = make_staff(services, Role.PRIVACY_OFFICER, ["clinic-a"])
    with FhirTestClient(create_app(services.settings, services)) as client:
        yield client, staff.headers


@pytest.mark.parametrize(
    ("method", "path", "without_token", "with_token"),
    [
        # The router's refusals come before any route, so before the token (as before).
        ("GET", "/fhir/Patient/p1/y/z/w", 404, 404),
        ("PUT", "/fhir", 405, 405),
        ("OPTIONS", "/fhir/metadata", 405, 405),
        # A route's own refusals come after the token (as before): 401 stays 401.
        ("DELETE", "/fhir/metadata", 401, 405),
        ("PATCH", "/fhir/metadata", 401, 405),
        ("PUT", "/fhir/Patient", 401, 415),
        ("GET", "/fhir/NoSuchType", 401, 404),
        ("GET", "/fhir/Patient/p1", 401, 404),
    ],
)
def test_a_caller_without_a_token_is_refused_where_it_was(
    web: tuple[FhirTestClient, dict[str, str]],
    method: str,
    path: str,
    without_token: int,
    with_token: int,
) -> None:
    client, officer = web
    anonymous = client.request(method, path)
    assert anonymous.status_code == without_token, anonymous.text
    if without_token == 401:
        refused(anonymous, 401, "login")
    signed_in = client.request(method, path, headers=officer)
    assert signed_in.status_code == with_token, signed_in.text
    assert signed_in.json()["resourceType"] == "OperationOutcome"
