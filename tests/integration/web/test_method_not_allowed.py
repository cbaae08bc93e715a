"""A 405 says which methods the path does accept (RFC 9110 15.5.6: it must send Allow),
and is still an OperationOutcome (an OAuth error object at the OAuth endpoints)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.web.app import create_app
from tests.support.client import FhirTestClient
from tests.support.staff import Staff, make_staff


@pytest.fixture
def web(services: Services) -> Iterator[tuple[FhirTestClient, Staff]]:
    staff = make_staff(services, Role.PRIVACY_OFFICER, ["clinic-a"])
    with FhirTestClient(create_app(services.settings, services)) as client:
        yield client, staff


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        # The read by id is its own route (HEAD answered as it); the update, patch and
        # delete are others.
        ("OPTIONS", "/fhir/Patient/p1", "GET, HEAD, PUT, PATCH, DELETE"),
        # Not the methods of /fhir/{type_name}: metadata is no resource type.
        ("OPTIONS", "/fhir/metadata", "GET, HEAD"),
        # An operation is not read by HEAD: a HEAD of the kick-off would start an export.
        ("HEAD", "/fhir/$export", "GET, POST"),
        ("HEAD", "/fhir/Patient/p1/$everything", "GET, POST"),
        ("GET", "/fhir?_type=Patient", "POST"),
        ("DELETE", "/fhir/Patient/p1/_history", "GET, HEAD"),
        ("POST", "/fhir/OperationDefinition/import", "GET, HEAD"),
        ("DELETE", "/admin/exports", "GET"),
        ("GET", "/auth/token", "POST"),
        ("POST", "/console/static/console.css", "GET, HEAD"),
    ],
)
def test_a_405_lists_the_methods_the_path_accepts(
    web: tuple[FhirTestClient, Staff], method: str, path: str, allowed: str
) -> None:
    client, staff = web
    response = client.request(method, path, headers=staff.headers)
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == allowed
    if method == "HEAD":
        return
    body = response.json()
    if path.startswith("/auth/"):
        # The OAuth endpoints answer as RFC 6749 5.2 does (integrator round 59b).
        assert body["error"] == "invalid_request"
        return
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "not-supported"


def test_every_method_allowed_is_answered_by_more_than_a_405(
    web: tuple[FhirTestClient, Staff],
) -> None:
    client, staff = web
    refused = client.request("OPTIONS", "/fhir/Patient/p1", headers=staff.headers)
    assert refused.status_code == 405
    for method in refused.headers["allow"].split(", "):
        answer = client.request(method, "/fhir/Patient/p1", headers=staff.headers)
        assert answer.status_code != 405, method
