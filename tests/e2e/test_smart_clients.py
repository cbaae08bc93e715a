"""SMART apps built on client libraries we did not write, against ``carevault serve``:
fhirclient (strict R4 models) finds the sign-in in the CapabilityStatement and completes a
patient launch; authlib drives the code flow with PKCE and verifies the ID token against
the published JWKS; fhirpy then works with the patient-confined token. The browser's
part (the sign-in form, the patient picker) is played by an httpx client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oidc.core import CodeIDToken
from fhirclient import client as smart_client
from fhirclient.models.observation import Observation
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import ForbiddenError
from joserfc import jwt as jose
from joserfc.jwk import KeySet

from carevault.config import Settings
from carevault.sim.loader import DEMO_CLIENT_ID, DEMO_REDIRECT_URIS
from tests.integration.access.browser import read_login_page, read_picker_page
from tests.support.auth import Login, colleagues, demo_logins, fresh_code, token_for
from tests.support.server import RunningServer

# What a client (or a browser) sees of the HTTP API: run on PostgreSQL, as production is; the
# storage under it is tested on both backends by the integration tests.
pytestmark = [pytest.mark.e2e, pytest.mark.only_backend("postgres")]

HKID_SYSTEM = "http://carevault.hk/sid/hkid"
REDIRECT = DEMO_REDIRECT_URIS[0]


def _created(server: RunningServer, token: str, body: dict[str, Any]) -> str:
    return str(_create(server, token, body)["id"])


def _create(server: RunningServer, token: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        f"{server.fhir}/{body['resourceType']}",
        json=body,
        headers={"authorization": f"Bearer {token}", "content-type": "application/fhir+json"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _patient(server: RunningServer, token: str, family: str, hkid: str) -> dict[str, Any]:
    """A patient registered by a front desk: at its clinic (managingOrganization filled in)."""
    return _create(
        server,
        token,
        {
            "resourceType": "Patient",
            "identifier": [{"system": HKID_SYSTEM, "value": hkid}],
            "name": [{"family": family, "given": ["Ka Yan"]}],
            "gender": "female",
            "birthDate": "1984-02-29",
        },
    )


def _sign_in(browser: httpx.Client, url: str, login: Login) -> httpx.Response:
    """What the user does on the sign-in page the app sent them to."""
    page = browser.get(url)
    assert page.status_code == 200, page.text
    form = read_login_page(page.text)
    filled = {
        **form.hidden,
        "username": login.username,
        "password": login.password,
        "totp": fresh_code(login),
    }
    return browser.post(form.action, data=filled)


def _choose(browser: httpx.Client, picker_page: httpx.Response, patient_id: str) -> str:
    """The user chooses the patient; where the browser is sent back to the app."""
    picker = read_picker_page(picker_page.text)
    assert patient_id in picker.patients
    back = browser.post("/auth/launch", data={**picker.hidden, "patient": patient_id})
    assert back.status_code == 302, back.text
    location: str = back.headers["location"]
    assert location.startswith(REDIRECT)
    return location


@pytest.fixture
def clinic(live_server: RunningServer, settings: Settings) -> Iterator[dict[str, Any]]:
    """A clinic's front desk registers a patient, its physician sees them; another
    clinic's patient exists too."""
    (desk, doctor), clinic_name = colleagues(settings.home, "front_desk", "physician")
    stranger_desk = next(
        login
        for login in demo_logins(settings.home)
        if login.role == "front_desk" and clinic_name not in login.clinics
    )
    desk_token = token_for(live_server.url, desk)
    doctor_token = token_for(live_server.url, doctor)
    registered = _patient(live_server, desk_token, "Ho", "P103498(0)")
    mine = registered["id"]
    theirs = _patient(live_server, token_for(live_server.url, stranger_desk), "Yip", "Y527301(1)")[
        "id"
    ]
    _created(
        live_server,
        doctor_token,
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": f"Patient/{mine}"},
            "serviceProvider": registered["managingOrganization"],
            "period": {"start": "2026-11-30T10:00:00+08:00"},
        },
    )
    observation = _created(
        live_server,
        doctor_token,
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "Body weight"},
            "subject": {"reference": f"Patient/{mine}"},
            "valueQuantity": {"value": 72.50, "unit": "kg"},
        },
    )
    yield {"doctor": doctor, "mine": mine, "theirs": theirs, "observation": observation}


def test_fhirclient_discovers_sign_in_and_completes_a_patient_launch(
    live_server: RunningServer, clinic: dict[str, Any]
) -> None:
    smart = smart_client.FHIRClient(
        settings={
            "app_id": DEMO_CLIENT_ID,
            "api_base": live_server.fhir,
            "redirect_uri": REDIRECT,
            "scope": "openid fhirUser patient/*.rs",
        }
    )
    # fhirclient reads the CapabilityStatement with its strict R4 models and takes the
    # OAuth endpoints from rest.security; it asks for launch/patient itself.
    smart.prepare()
    authorize_url = smart.authorize_url
    assert authorize_url.startswith(f"{live_server.url}/auth/authorize?")
    asked = parse_qs(urlsplit(authorize_url).query)
    assert "launch/patient" in asked["scope"][0].split()

    with httpx.Client(base_url=live_server.url, timeout=30) as browser:
        picker_page = _sign_in(browser, authorize_url, clinic["doctor"])
        assert picker_page.status_code == 200
        offered = read_picker_page(picker_page.text).patients
        assert clinic["mine"] in offered and clinic["theirs"] not in offered
        callback = _choose(browser, picker_page, clinic["mine"])

    smart.handle_callback(callback)

    assert smart.ready and smart.patient_id == clinic["mine"]
    patient = smart.patient
    assert patient is not None and patient.name[0].family == "Ho"
    search = Observation.where({"patient": clinic["mine"]})
    observations = list(search.perform_resources_iter(smart.server))
    assert [item.id for item in observations] == [clinic["observation"]]
    assert str(observations[0].valueQuantity.value) in ("72.5", "72.50")
    # The other clinic's patient is out of reach for this app, whatever the user may see.
    refused = httpx.get(
        f"{live_server.fhir}/Patient/{clinic['theirs']}",
        headers={"authorization": f"Bearer {smart.server.auth.access_token}"},
        timeout=30,
    )
    assert refused.status_code == 403


def test_authlib_signs_in_with_pkce_and_verifies_the_id_token_against_the_jwks(
    live_server: RunningServer, clinic: dict[str, Any]
) -> None:
    discovery = httpx.get(f"{live_server.url}/.well-known/openid-configuration", timeout=30).json()
    with OAuth2Client(
        client_id=DEMO_CLIENT_ID,
        redirect_uri=REDIRECT,
        scope="openid fhirUser profile offline_access launch/patient patient/*.rs",
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
        timeout=30,
    ) as app:
        _authlib_flow(live_server, clinic, discovery, app)


def _authlib_flow(
    live_server: RunningServer, clinic: dict[str, Any], discovery: dict[str, Any], app: OAuth2Client
) -> None:
    verifier = "v" * 20 + "-authlib-pkce-verifier-" + "x" * 30
    nonce = "nonce-from-authlib-test"
    url, state = app.create_authorization_url(
        discovery["authorization_endpoint"],
        code_verifier=verifier,
        nonce=nonce,
        aud=live_server.fhir,
    )

    with httpx.Client(base_url=live_server.url, timeout=30) as browser:
        picker_page = _sign_in(browser, url, clinic["doctor"])
        callback = _choose(browser, picker_page, clinic["mine"])

    token = app.fetch_token(
        discovery["token_endpoint"], authorization_response=callback, code_verifier=verifier
    )

    assert token["patient"] == clinic["mine"]
    assert parse_qs(urlsplit(callback).query)["state"] == [state]
    jwks = httpx.get(discovery["jwks_uri"], timeout=30).json()
    verified = jose.decode(token["id_token"], KeySet.import_key_set(jwks), algorithms=["RS256"])
    claims = CodeIDToken(
        verified.claims,
        verified.header,
        options={"iss": {"essential": True, "value": discovery["issuer"]}},
        params={"nonce": nonce, "client_id": DEMO_CLIENT_ID},
    )
    claims.validate()
    assert claims["fhirUser"].startswith(f"{live_server.fhir}/Practitioner/")
    me = app.get(claims["fhirUser"])
    assert me.status_code == 200 and me.json()["resourceType"] == "Practitioner"

    # fhirpy with the patient-confined token: the patient's chart, and no one else's.
    fhir = SyncFHIRClient(
        live_server.fhir,
        authorization=f"Bearer {token['access_token']}",
        requests_config={"timeout": 30},
    )
    found = fhir.resources("Observation").search(patient=clinic["mine"]).fetch_all()
    assert [item.id for item in found] == [clinic["observation"]]
    everyone = fhir.resources("Patient").fetch_all()
    assert [item.id for item in everyone] == [clinic["mine"]]
    with pytest.raises(ForbiddenError, match="patient in context"):
        fhir.reference("Patient", clinic["theirs"]).to_resource()

    refreshed = app.refresh_token(discovery["token_endpoint"])
    assert refreshed["patient"] == clinic["mine"] and refreshed["access_token"]
    revoked = app.revoke_token(
        discovery["revocation_endpoint"], token=refreshed["refresh_token"], token_type_hint=None
    )
    assert revoked.status_code == 200
    after = httpx.get(
        f"{live_server.fhir}/Patient/{clinic['mine']}",
        headers={"authorization": f"Bearer {refreshed['access_token']}"},
        timeout=30,
    )
    assert after.status_code == 401


def test_a_browser_apps_preflight_is_answered_by_the_running_server(
    live_server: RunningServer,
) -> None:
    origin = "http://127.0.0.1:8765"  # the demo app's redirect origin
    preflight = httpx.options(
        f"{live_server.fhir}/Patient",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
        timeout=30,
    )
    stranger = httpx.options(
        f"{live_server.url}/auth/token",
        headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"},
        timeout=30,
    )

    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == origin
    assert stranger.status_code == 403
    assert "access-control-allow-origin" not in stranger.headers
