"""The OAuth endpoints as a client library meets them (integrator round 59b): every
answer of the token and revocation endpoints is an OAuth error object (RFC 6749 5.2), as
docs/smart-apps.md promises, never a FHIR OperationOutcome."""

from __future__ import annotations

import pytest

from tests.support.client import FhirTestClient


@pytest.mark.parametrize("path", ["/auth/token", "/auth/revoke"])
def test_a_get_of_the_token_or_revocation_endpoint_is_an_oauth_error(
    web: FhirTestClient, path: str
) -> None:
    """RFC 6749 3.2: "The client MUST use the HTTP POST method"; a client that sends a
    GET (a misconfigured library, a hand-written script) got 405 with a FHIR
    OperationOutcome (``application/fhir+json``), which an OAuth library reads as no
    error at all. Now 405 with ``Allow: POST`` (RFC 9110 15.5.6) and RFC 6749 5.2's JSON
    ``invalid_request``, kept out of every cache."""
    response = web.get(path, params={"grant_type": "client_credentials", "token": "t"})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"error": "invalid_request", "error_description": "use POST"}
    assert response.headers["cache-control"] == "no-store"


def test_other_paths_keep_their_fhir_405(web: FhirTestClient) -> None:
    """Only the OAuth endpoints answer as OAuth does: another path still answers a method
    it does not take with an OperationOutcome, as before."""
    response = web.post("/.well-known/smart-configuration")
    assert response.status_code == 405
    assert response.json()["resourceType"] == "OperationOutcome"
