"""What a SMART app discovers and gets: the CapabilityStatement's security, the OpenID
configuration and JWKS, an ID token naming the user (``fhirUser``), and a patient
launch whose picker shows only patients the user may see and whose ``patient/`` scopes
then reach that patient alone. In-process, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from authlib.oidc.core import CodeIDToken
from joserfc import jwt as jose
from joserfc.jwk import KeySet

from carevault.bootstrap import Services
from carevault.ledger.events import Outcome, Tag
from tests.integration.access.browser import (
    APP_SCOPES,
    REDIRECT_URI,
    AuthRequest,
    PickerPage,
    bearer,
    code_from,
    error_from,
    read_picker_page,
    submit_login,
)
from tests.integration.access.group import Group, build_group, observation
from tests.support.client import FhirTestClient
from tests.support.staff import PASSWORD, Staff

pytestmark = pytest.mark.postgres

APP = "smart-app"
BASE = "http://testserver"
FHIR_BASE = f"{BASE}/fhir"
LAUNCH_SCOPE = "openid fhirUser launch/patient patient/*.rs"


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    services.clients.add(
        APP, "Bedside app", confidential=False, scopes=APP_SCOPES, redirect_uris=[REDIRECT_URI]
    )
    yield from build_group(services, api)


def _launch(web: FhirTestClient, staff: Staff, request: AuthRequest) -> PickerPage:
    """Sign in for a patient launch: the picker page that follows."""
    page = submit_login(web, request, staff.login.username, PASSWORD, staff.totp())
    assert page.status_code == 200, page.text
    assert page.headers["cache-control"] == "no-store"
    return read_picker_page(page.text)


def _post_picker(web: FhirTestClient, picker: PickerPage, **fields: str) -> Any:
    return web.post("/auth/launch", data={**picker.hidden, **fields}, follow_redirects=False)


def _redeem(web: FhirTestClient, request: AuthRequest, code: str) -> Any:
    return web.post("/auth/token", data=request.exchange(code))


def test_the_capability_statement_tells_apps_how_to_sign_in(group: Group) -> None:
    statement = group.web.get("/fhir/metadata").json()

    (rest,) = statement["rest"]
    security = rest["security"]
    assert security["cors"] is True
    (service,) = security["service"]
    assert service["coding"][0]["code"] == "SMART-on-FHIR"
    (uris,) = security["extension"]
    assert uris["url"].endswith("/StructureDefinition/oauth-uris")
    found = {item["url"]: item["valueUri"] for item in uris["extension"]}
    assert found == {
        "authorize": f"{BASE}/auth/authorize",
        "token": f"{BASE}/auth/token",
        "revoke": f"{BASE}/auth/revoke",
    }


def test_discovery_documents_list_what_the_server_does(group: Group) -> None:
    smart = group.web.get("/.well-known/smart-configuration").json()
    openid = group.web.get("/.well-known/openid-configuration").json()
    keys = group.web.get("/.well-known/jwks.json")

    assert smart["issuer"] == openid["issuer"] == BASE
    assert smart["jwks_uri"] == openid["jwks_uri"] == f"{BASE}/.well-known/jwks.json"
    assert {"launch-standalone", "context-standalone-patient", "sso-openid-connect"} <= set(
        smart["capabilities"]
    )
    assert "launch-ehr" not in smart["capabilities"]
    assert {"openid", "fhirUser", "launch/patient", "patient/*.rs"} <= set(
        smart["scopes_supported"]
    )
    assert openid["id_token_signing_alg_values_supported"] == ["RS256"]
    assert openid["subject_types_supported"] == ["public"]
    assert keys.headers["content-type"].startswith("application/jwk-set+json")
    (key,) = keys.json()["keys"]
    assert (key["kty"], key["alg"], key["use"]) == ("RSA", "RS256", "sig")
    assert "d" not in key and "p" not in key  # the public half only


def test_an_id_token_names_the_practitioner_and_verifies_against_the_jwks(group: Group) -> None:
    web, doctor = group.web, group.doctor_tm
    request = AuthRequest(APP, FHIR_BASE, scope="openid fhirUser profile user/*.rs")
    nonce = "n-0S6_WzA2Mj"
    page = web.get("/auth/authorize", params=request.params(nonce=nonce))
    assert page.status_code == 200
    code = code_from(
        submit_login(
            web, _with_nonce(request, nonce), doctor.login.username, PASSWORD, doctor.totp()
        ),
        request,
    )

    body = _redeem(web, request, code).json()

    assert "fhirUser" in body["scope"].split()
    jwks = web.get("/.well-known/jwks.json").json()
    verified = jose.decode(body["id_token"], KeySet.import_key_set(jwks), algorithms=["RS256"])
    claims = CodeIDToken(
        verified.claims,
        verified.header,
        options={"iss": {"essential": True, "value": BASE}},
        params={"nonce": nonce, "client_id": APP},
    )
    claims.validate()
    assert claims["aud"] == APP
    assert claims["sub"] == doctor.account.account_id
    assert claims["fhirUser"] == f"{FHIR_BASE}/Practitioner/dr-tm"
    assert claims["name"] == doctor.account.display_name
    # The user it names is readable by its own reference.
    practitioner = web.get(
        claims["fhirUser"].removeprefix(BASE), headers=bearer(body["access_token"])
    )
    assert practitioner.status_code == 200
    # An ID token is no access token, and the other way round.
    assert web.get("/fhir/Patient", headers=bearer(body["id_token"])).status_code == 401
    with pytest.raises(jwt.PyJWTError):
        jwt.decode(
            body["access_token"],
            jwt.PyJWK(jwks["keys"][0]).key,
            algorithms=["RS256"],
            audience=APP,
        )


def test_fhir_user_is_not_granted_to_a_user_who_is_not_a_practitioner(group: Group) -> None:
    web, desk = group.web, group.desk_tm
    request = AuthRequest(APP, FHIR_BASE, scope="openid fhirUser user/Patient.rs")
    code = code_from(
        submit_login(web, request, desk.login.username, PASSWORD, desk.totp()), request
    )

    body = _redeem(web, request, code).json()

    assert body["scope"].split() == ["openid", "user/Patient.rs"]
    claims = jwt.decode(body["id_token"], options={"verify_signature": False})
    assert "fhirUser" not in claims and "nonce" not in claims


def test_no_id_token_without_openid(group: Group) -> None:
    web, doctor = group.web, group.doctor_tm
    request = AuthRequest(APP, FHIR_BASE, scope="user/*.rs")
    code = code_from(
        submit_login(web, request, doctor.login.username, PASSWORD, doctor.totp()), request
    )

    assert "id_token" not in _redeem(web, request, code).json()


def _with_nonce(request: AuthRequest, nonce: str) -> Any:
    """The request as the browser submits it, with the app's nonce among its fields."""

    class WithNonce:
        def params(self, **changes: str) -> dict[str, str]:
            return request.params(nonce=nonce, **changes)

    return WithNonce()


def test_a_patient_launch_confines_the_app_to_the_patient_the_clinician_chose(
    group: Group, services: Services
) -> None:
    web, doctor = group.web, group.doctor_tm
    mine, theirs = group.tm_patient, group.tw_patient
    request = AuthRequest(APP, FHIR_BASE, scope=LAUNCH_SCOPE)

    picker = _launch(web, doctor, request)

    # Only patients the clinician may see are listed, whatever is typed.
    assert picker.patients == [mine.id]
    for typed in ("Lee", theirs.hkid, "Chan"):
        listed = read_picker_page(_post_picker(web, picker, q=typed).text)
        assert theirs.id not in listed.patients
    # Choosing one they may not see (a forged form) is refused, and nothing is issued.
    forged = _post_picker(web, picker, patient=theirs.id)
    assert forged.status_code == 403
    assert "may not choose" in " ".join(read_picker_page(forged.text).alert)
    # The code waiting for the picker is not redeemable.
    assert _redeem(web, request, picker.hidden["ticket"]).json()["error"] == "invalid_grant"

    chosen = _post_picker(
        web, read_picker_page(_post_picker(web, picker, q="Chan").text), patient=mine.id
    )
    body = _redeem(web, request, code_from(chosen, request)).json()

    assert body["patient"] == mine.id
    assert set(body["scope"].split()) == {"openid", "fhirUser", "launch/patient", "patient/*.rs"}
    token = bearer(body["access_token"])
    assert web.get(f"/fhir/Patient/{mine.id}", headers=token).status_code == 200
    assert web.get(f"/fhir/Observation/{mine.observation}", headers=token).status_code == 200
    assert web.get(f"/fhir/Patient/{theirs.id}", headers=token).status_code == 403
    assert web.get(f"/fhir/Observation/{theirs.observation}", headers=token).status_code == 403
    everything = web.get(f"/fhir/Patient/{theirs.id}/$everything", headers=token)
    assert everything.status_code == 403
    searched = web.get("/fhir/Observation", headers=token).json()
    assert [entry["resource"]["id"] for entry in searched.get("entry", [])] == [mine.observation]
    patients = web.get("/fhir/Patient", headers=token).json()
    assert [entry["resource"]["id"] for entry in patients["entry"]] == [mine.id]
    # Directory records are no one's data: readable under patient/*.rs.
    assert web.get("/fhir/Practitioner/dr-tm", headers=token).status_code == 200
    # Reading only: patient/ scopes never write, even to the patient in context.
    created = web.post(
        "/fhir/Observation",
        content=json.dumps(observation(mine.id)),
        headers={**token, "content-type": "application/fhir+json"},
    )
    assert created.status_code == 403

    store_events = group.events()
    (picked,) = [event for event in store_events if event.tag is Tag.AUTH_PATIENT_CHOSEN]
    assert (picked.resource_id, picked.client_id) == (mine.id, APP)
    picker_searches = [
        event
        for event in store_events
        if event.tag is Tag.FHIR_SEARCH
        and event.client_id == APP
        and event.principal == f"staff:{doctor.login.username}"
    ]
    assert len(picker_searches) >= 4  # the first list and each look-up are in the ledger
    assert any(
        event.tag is Tag.FHIR_READ
        and event.outcome is Outcome.DENIED
        and event.resource_id == theirs.id
        and event.client_id == APP
        for event in store_events
    )


def test_patient_scopes_without_the_launch_are_not_granted(group: Group) -> None:
    web, doctor = group.web, group.doctor_tm
    only_patient = AuthRequest(APP, FHIR_BASE, scope="openid patient/*.rs")

    refused = web.get("/auth/authorize", params=only_patient.params(), follow_redirects=False)

    assert error_from(refused, only_patient) == "invalid_scope"
    mixed = AuthRequest(APP, FHIR_BASE, scope="patient/*.rs user/Patient.rs")
    code = code_from(
        submit_login(web, mixed, doctor.login.username, PASSWORD, doctor.totp()), mixed
    )
    body = _redeem(web, mixed, code).json()
    assert body["scope"] == "user/Patient.rs" and "patient" not in body


def test_an_ehr_launch_is_refused_clearly(group: Group) -> None:
    request = AuthRequest(APP, FHIR_BASE, scope=LAUNCH_SCOPE)

    response = group.web.get(
        "/auth/authorize", params=request.params(launch="xyz"), follow_redirects=False
    )

    assert error_from(response, request) == "invalid_request"
    assert "EHR launch" in response.headers["location"].replace("+", " ")


def test_a_picker_ticket_expires_and_cannot_be_used_by_another_app(
    group: Group, services: Services
) -> None:
    web, doctor = group.web, group.doctor_tm
    services.clients.add(
        "other-app", "Other", confidential=False, scopes=APP_SCOPES, redirect_uris=[REDIRECT_URI]
    )
    request = AuthRequest(APP, FHIR_BASE, scope=LAUNCH_SCOPE)
    picker = _launch(web, doctor, request)
    stolen = {**picker.hidden, "client_id": "other-app"}

    moved = web.post(
        "/auth/launch", data={**stolen, "patient": group.tm_patient.id}, follow_redirects=False
    )

    assert "error=access_denied" in moved.headers["location"]
    assert "code=" not in moved.headers["location"]


def _glass(reason: str = "emergency-treatment") -> str:
    return json.dumps(
        {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "reason", "valueCode": reason},
                {"name": "text", "valueString": "patient collapsed in the waiting room"},
            ],
        }
    )


def test_a_patient_launch_app_breaks_no_glass_on_another_patient(
    group: Group, services: Services
) -> None:
    """Adversary round 43: an app granted ``patient/*.rs`` for the patient the clinician
    chose broke the glass on another patient in the clinician's name (200, a grant that
    opened that record to every other session of the account, in words the app chose).
    Its token asks for grants on the patient in context only."""
    web, doctor = group.web, group.doctor_tm
    mine, theirs = group.tm_patient, group.tw_patient
    request = AuthRequest(APP, FHIR_BASE, scope=LAUNCH_SCOPE)
    picker = _launch(web, doctor, request)
    chosen = _post_picker(web, picker, patient=mine.id)
    token = bearer(_redeem(web, request, code_from(chosen, request)).json()["access_token"])
    headers = {**token, "content-type": "application/fhir+json"}

    refused = web.post(f"/fhir/Patient/{theirs.id}/$break-glass", content=_glass(), headers=headers)

    assert refused.status_code == 403, refused.text
    assert services.break_glass.pending() == []
    assert group.call(doctor, "GET", f"/fhir/Patient/{theirs.id}").status_code == 403
    (denied,) = [
        event for event in group.events(Tag.ACCESS_BREAK_GLASS) if event.resource_id == theirs.id
    ]
    assert (denied.outcome, denied.client_id) == (Outcome.DENIED, APP)
    # The patient in context: the app may ask (what the glass opens it may read already).
    allowed = web.post(f"/fhir/Patient/{mine.id}/$break-glass", content=_glass(), headers=headers)
    assert allowed.status_code == 200, allowed.text


def test_a_picker_post_without_state_chooses_no_patient_and_sends_no_code(
    group: Group, services: Services
) -> None:
    """The patient picker's post is the authorize request checked again: ``state`` taken
    out of it (SMART App Launch 2.0 requires it) sends the app ``invalid_request``, no
    code, and puts no patient in context."""
    web, doctor = group.web, group.doctor_tm
    request = AuthRequest(APP, FHIR_BASE, scope=LAUNCH_SCOPE)
    picker = _launch(web, doctor, request)
    without = {name: value for name, value in picker.hidden.items() if name != "state"}

    response = web.post(
        "/auth/launch", data={**without, "patient": group.tm_patient.id}, follow_redirects=False
    )

    assert response.status_code == 302, response.text
    assert response.headers["location"].startswith(f"{REDIRECT_URI}?")
    assert "error=invalid_request" in response.headers["location"]
    assert "code=" not in response.headers["location"]
    assert "state=" not in response.headers["location"]
    assert [event for event in group.events() if event.tag is Tag.AUTH_PATIENT_CHOSEN] == []
    (denied,) = [
        event
        for event in group.events(Tag.AUTH_TOKEN_REFUSED)
        if event.reason.startswith("authorize: state is required")
    ]
    assert denied.client_id == APP
    # The waiting code is still not redeemable, and the form with its state still works.
    assert _redeem(web, request, picker.hidden["ticket"]).json()["error"] == "invalid_grant"
    chosen = _post_picker(web, picker, patient=group.tm_patient.id)
    assert _redeem(web, request, code_from(chosen, request)).status_code == 200


@pytest.mark.parametrize(
    ("asked", "answered"),
    [
        ("openid fhirUser user/*.read", "openid fhirUser user/*.read"),
        (
            "openid user/Patient.read user/Observation.rs",
            "openid user/Patient.read user/Observation.rs",
        ),
        ("openid user/*.cruds", "openid user/*.cruds"),
    ],
)
def test_a_code_grant_answers_the_scopes_as_the_app_asked_for_them(
    group: Group, asked: str, answered: str
) -> None:
    """SMART App Launch 2.0: servers "SHOULD return v1 scopes when v1 scopes are
    requested and granted". A code's token request names no scope (the app asked at
    /auth/authorize), and the response was the granted v2 text: an app asking
    ``user/*.read`` was answered ``user/*.rs`` and found its scope refused (left open
    at stop 65). The words asked are kept with the code (records_0041); the token grants
    the same either way."""
    web, doctor = group.web, group.doctor_tm
    request = AuthRequest(APP, FHIR_BASE, scope=asked)
    code = code_from(
        submit_login(web, request, doctor.login.username, PASSWORD, doctor.totp()), request
    )
    body = _redeem(web, request, code).json()
    assert sorted(body["scope"].split()) == sorted(answered.split()), body["scope"]
    read = web.get(f"/fhir/Patient/{group.tm_patient.id}", headers=bearer(body["access_token"]))
    assert read.status_code == 200
