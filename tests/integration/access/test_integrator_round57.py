"""The token endpoint as an OAuth library drives a refresh (integrator round 57): authlib's
``OAuth2Session.refresh_token(..., scope=...)`` asks for a narrower access token, as
RFC 6749 section 6 lets a client do ("The requested scope MUST NOT include any scope not
originally granted ... and if omitted is treated as equal to the scope originally
granted"), and SMART App Launch v2 (refresh: "equal to or narrower than" the original)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from fhirclient.models.bundle import Bundle
from fhirclient.models.capabilitystatement import CapabilityStatement

from carevault.domain.roles import Role
from tests.integration.access.browser import bearer
from tests.integration.access.conftest import APP, NewStaff
from tests.integration.access.test_tokens import _claims, _grant
from tests.support.client import FhirTestClient
from tests.support.inprocess import mounted

TOKEN_URL = "http://testserver/auth/token"
OFFLINE = "offline_access user/*.cruds"


@pytest.fixture
def app_session(web: FhirTestClient) -> Iterator[OAuth2Session]:
    """authlib's session for the public clinic app, talking to the app in-process."""
    session = OAuth2Session(client_id=APP, token_endpoint_auth_method="none")
    mounted(session, web)
    yield session
    session.close()


def _status(web: FhirTestClient, path: str, token: str) -> int:
    status: int = web.get(path, headers=bearer(token)).status_code
    return status


def test_a_refresh_asking_for_less_scope_gets_an_access_token_of_only_that(
    web: FhirTestClient, new_staff: NewStaff, app_session: OAuth2Session
) -> None:
    """The scope was ignored: the narrower token the app asked for came back with the
    whole grant (``user/*.cruds``), so an app dropping privileges it no longer needs
    still held them. The refresh token keeps the original grant (RFC 6749 section 6:
    its scope "MUST be identical"): a later refresh without scope gets it back."""
    first = _grant(web, new_staff().grant(OFFLINE))
    narrowed: dict[str, Any] = app_session.refresh_token(
        TOKEN_URL, refresh_token=first["refresh_token"], scope="user/Patient.rs"
    )
    assert narrowed["scope"] == "user/Patient.rs"
    assert _claims(narrowed["access_token"])["scope"] == "user/Patient.rs"
    assert _claims(narrowed["access_token"])["sid"] == _claims(first["access_token"])["sid"]
    assert _status(web, "/fhir/Patient", narrowed["access_token"]) == 200
    assert _status(web, "/fhir/Observation", narrowed["access_token"]) == 403
    assert narrowed["refresh_token"] != first["refresh_token"]

    again: dict[str, Any] = app_session.refresh_token(
        TOKEN_URL, refresh_token=narrowed["refresh_token"]
    )
    assert again["scope"] == OFFLINE
    assert _status(web, "/fhir/Observation", again["access_token"]) == 200


def test_a_refresh_asking_for_more_than_was_granted_is_invalid_scope_and_spends_nothing(
    web: FhirTestClient, new_staff: NewStaff, app_session: OAuth2Session
) -> None:
    """RFC 6749 5.2: ``invalid_scope``, "exceeds the scope granted by the resource
    owner". It was answered 200 with the original grant, as if nothing had been asked.
    A refusal spends neither the refresh token nor the session."""
    first = _grant(web, new_staff().grant("offline_access user/Patient.rs"))
    for wider in ("user/*.cruds", "user/Patient.cruds", "user/Patient.rs openid", "nonsense"):
        with pytest.raises(OAuthError) as refused:
            app_session.refresh_token(TOKEN_URL, refresh_token=first["refresh_token"], scope=wider)
        assert refused.value.error == "invalid_scope", wider
    kept: dict[str, Any] = app_session.refresh_token(
        TOKEN_URL, refresh_token=first["refresh_token"]
    )
    assert kept["scope"] == "offline_access user/Patient.rs"


def test_a_token_request_missing_what_its_grant_requires_is_an_invalid_request(
    web: FhirTestClient,
) -> None:
    """RFC 6749 5.2: a required parameter missing is ``invalid_request``, not the
    ``invalid_grant`` of a refresh token or code that is not valid (a client's bug read
    as a revoked grant: an app dropped its sign-in), nor ``unsupported_grant_type`` for
    no ``grant_type`` at all."""
    for form in (
        {"grant_type": "refresh_token"},
        {"grant_type": "refresh_token", "refresh_token": ""},
        {"grant_type": "authorization_code", "redirect_uri": "https://a.example/"},
        {},
    ):
        answer = web.post("/auth/token", data={**form, "client_id": APP})
        assert answer.status_code == 400, form
        assert answer.json()["error"] == "invalid_request", (form, answer.text)


def test_a_revocation_naming_no_token_is_an_invalid_request_not_a_success(
    web: FhirTestClient, new_staff: NewStaff
) -> None:
    """RFC 7009 2.1: ``token`` is REQUIRED; 2.2.1: an error is answered as RFC 6749 5.2
    says (``invalid_request``: "missing a required parameter"). An app signing out with
    an empty token variable was answered 200, as a revocation done, and its session lived
    on. An unknown token is still answered 200 (RFC 7009 2.2)."""
    tokens = _grant(web, new_staff().grant(OFFLINE))
    for form in ({"client_id": APP}, {"client_id": APP, "token": ""}):
        answer = web.post("/auth/revoke", data=form)
        assert answer.status_code == 400, (form, answer.text)
        assert answer.json()["error"] == "invalid_request"
        assert answer.headers["cache-control"] == "no-store"
    unknown = web.post("/auth/revoke", data={"token": "never-issued", "client_id": APP})
    assert unknown.status_code == 200
    assert _status(web, "/fhir/Patient", tokens["access_token"]) == 200


INSUFFICIENT_SCOPE = 'Bearer realm="carevault", error="insufficient_scope"'


def test_a_request_the_tokens_scopes_do_not_allow_is_challenged_for_insufficient_scope(
    web: FhirTestClient, new_staff: NewStaff
) -> None:
    """RFC 6750 3: a request whose token "does not contain an access token that enables
    access to the protected resource" MUST be answered with a ``WWW-Authenticate``
    challenge; 3.1: ``insufficient_scope``, with 403. An app granted ``user/Patient.rs``
    was answered a bare 403 for an Observation search, a Patient create and the account's
    sessions, the same 403 as a refusal of the account's own rights, so a client could not
    tell that asking the user for more scope would help. A refusal by the access policy
    (a physician reading audit events) is no token's fault and names none."""
    physician = new_staff()
    narrow = _grant(web, physician.grant("user/Patient.rs"))["access_token"]
    for answer in (
        web.get("/fhir/Observation", headers=bearer(narrow)),
        web.post(
            "/fhir/Patient",
            content=b'{"resourceType": "Patient"}',
            headers={**bearer(narrow), "content-type": "application/fhir+json"},
        ),
        web.get("/auth/sessions", headers=bearer(narrow)),
    ):
        assert answer.status_code == 403, answer.text
        assert answer.headers["www-authenticate"] == INSUFFICIENT_SCOPE
        assert answer.json()["resourceType"] == "OperationOutcome"
    whole = _grant(web, physician.grant("user/*.cruds"))["access_token"]
    policy = web.get("/fhir/AuditEvent", headers=bearer(whole))
    assert policy.status_code == 403
    assert "www-authenticate" not in policy.headers
    # A privacy officer whose app was granted less than the account's whole reach: the
    # token, not the account, stands in the way of the officer's tools.
    officer = new_staff(Role.PRIVACY_OFFICER)
    narrow_officer = _grant(web, officer.grant("user/Patient.rs"))["access_token"]
    for path in ("/fhir/AuditEvent", "/admin/alerts"):
        refused = web.get(path, headers=bearer(narrow_officer))
        assert refused.status_code == 403, (path, refused.text)
        assert refused.headers["www-authenticate"] == INSUFFICIENT_SCOPE


def test_the_capability_statement_lists_the_audit_event_search_that_works(
    web: FhirTestClient, new_staff: NewStaff
) -> None:
    """R4 capabilitystatement.html: the statement is what the server does; a client
    (fhirclient's ``CapabilityStatement``) looking for where to search the audit trail
    found no AuditEvent in it, though ``GET /fhir/AuditEvent`` answers a privacy officer
    with ``patient``, ``agent``, ``date`` and ``outcome``. Now it lists the type, its one
    interaction (``search-type``) and each parameter, and each listed one is taken."""
    statement = CapabilityStatement(web.get("/fhir/metadata").json())
    (audit,) = [r for r in statement.rest[0].resource if r.type == "AuditEvent"]
    assert [i.code for i in audit.interaction] == ["search-type"]
    params = {p.name: p.type for p in audit.searchParam}
    assert params == {
        "patient": "reference", "agent": "token", "date": "date", "outcome": "token",
        # integrator round 67
        "_lastUpdated": "date", "type": "token", "subtype": "token", "entity": "reference",
    }  # fmt: skip
    officer = _grant(web, new_staff(Role.PRIVACY_OFFICER).grant("user/*.cruds"))["access_token"]
    probes = {
        "patient": "Patient/p1", "agent": "staff:nobody", "date": "ge2024", "outcome": "0",
        "_lastUpdated": "ge2024", "type": "rest", "subtype": "fhir:patient:read",
        "entity": "Patient/p1",
    }  # fmt: skip
    for name in params:
        answer = web.get(f"/fhir/AuditEvent?{name}={probes[name]}", headers=bearer(officer))
        assert answer.status_code == 200, (name, answer.text)
        assert answer.json()["type"] == "searchset"


def test_the_audit_event_search_says_what_it_searched_in_a_self_link(
    web: FhirTestClient, new_staff: NewStaff
) -> None:
    """R4 search.html: "servers SHALL return the parameters that were actually used to
    process a search", in the Bundle's self link ("all search sets include the self
    link"). The AuditEvent search answered a searchset with a next link at most, so a
    client checking what was searched (fhirclient reads ``link``) found nothing to check:
    every parameter is now in it, with the page size used; a next page's self link is
    that page's own URL."""
    officer = _grant(web, new_staff(Role.PRIVACY_OFFICER).grant("user/*.cruds"))["access_token"]
    first = web.get("/fhir/AuditEvent?date=ge2024&outcome=0&_count=1", headers=bearer(officer))
    assert first.status_code == 200, first.text
    page = Bundle(first.json())
    links = {link.relation: link.url for link in page.link}
    assert links["self"] == "http://testserver/fhir/AuditEvent?date=ge2024&outcome=0&_count=1"
    assert set(links) == {"self", "next"}
    second = web.get(links["next"].removeprefix("http://testserver"), headers=bearer(officer))
    again = {link.relation: link.url for link in Bundle(second.json()).link}
    assert again["self"] == links["next"]
    default = web.get("/fhir/AuditEvent?agent=staff:nobody", headers=bearer(officer)).json()
    assert default["link"] == [
        {
            "relation": "self",
            "url": "http://testserver/fhir/AuditEvent?agent=staff%3Anobody&_count=50",
        }
    ]
