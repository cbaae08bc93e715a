"""A single-page SMART app built on SMART's own client-js (fhirclient 2.6.3, the vendored
browser bundle in tests/e2e/smart_app), served from its own origin and run in headless
Chromium against ``carevault serve``: a patient launch through the sign-in page and the
patient picker, the patient and their Observations paged by the library, the user
(``fhirUser``), the ID token and a refresh; a user-level launch; then, in the same
browser, another app holding the first app's refresh token, the clinician suspended, and
a clinician declining on the sign-in page.

Integrator round 69 found that no browser app got its code (the sign-in pages' CSP
``form-action 'self'`` blocked the redirect back to the app), that client-js's refresh
(the refresh token alone) was refused, and that a clinician could not decline (the app
waited for ever); see docs/threat-model.md."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from carevault.config import Settings
from tests.e2e.console.browser import CHROMEDRIVER, CHROMIUM, chromium, serving
from tests.e2e.test_smart_clients import _create
from tests.support.auth import Login, colleagues, demo_logins, fresh_code, token_for
from tests.support.server import RunningServer, invoke_cli, running_server
from tests.support.template import served_staff

# What a client (or a browser) sees of the HTTP API: run on PostgreSQL, as production is; the
# storage under it is tested on both backends by the integration tests.
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.only_backend("postgres"),
    pytest.mark.skipif(
        not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
        reason="no Chromium (or its driver) here",
    ),
]

APP_FILES = Path(__file__).parent / "smart_app"
APP_ID = "chart-viewer"
OTHER_APP_ID = "other-app"
SCOPES = "openid fhirUser profile launch/patient patient/*.rs user/*.rs offline_access"
PATIENT_LAUNCH = "launch/patient patient/*.rs openid fhirUser offline_access"
USER_LAUNCH = "openid fhirUser offline_access user/*.rs"

#: Runs in a page of the other app's origin: token requests with what it was handed.
_TOKEN_CALLS = """
const [server, forms] = [arguments[0], arguments[1]];
const done = arguments[arguments.length - 1];
(async () => {
  const answers = [];
  for (const form of forms) {
    const response = await fetch(server + '/auth/token', {
      method: 'POST', body: new URLSearchParams(form),
      headers: {'content-type': 'application/x-www-form-urlencoded'}});
    answers.push({status: response.status, body: await response.json()});
  }
  done(answers);
})().catch(error => done([{error: String(error)}]));
"""

#: Runs in the app's page: a request through the app's client (which refreshes by
#: itself on a 401, as client-js does), or the error the library gave.
_APP_REQUEST = """
const done = arguments[arguments.length - 1];
window.smartClient.request(arguments[0])
  .then(found => done({ok: found.resourceType + '/' + found.id}))
  .catch(error => done({error: String(error), status: error.status || null}));
"""


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[tuple[RunningServer, dict[str, str]]]:
    """``carevault serve`` over a home with the clinic group's staff; a CORS list that
    follows registrations at once (the apps are registered after it starts)."""
    env = served_staff(settings, {"CAREVAULT_CORS_REFRESH_SECONDS": "0.1"})
    with running_server(env, tmp_path) as running:
        yield running, env


def _static(directory: Path) -> Starlette:
    return Starlette(routes=[Mount("/", StaticFiles(directory=directory, html=True))])


def _cli(env: dict[str, str], *args: str) -> None:
    result = invoke_cli(env, *args)
    assert result.returncode == 0, result.stdout + result.stderr


def _register(env: dict[str, str], client_id: str, origin: str) -> None:
    _cli(
        env,
        "client",
        "add",
        client_id,
        "--name",
        "Chart viewer",
        "--scope",
        SCOPES,
        "--redirect-uri",
        f"{origin}/callback.html",
    )


def _patient_with_observations(
    server: RunningServer, desk: Login, doctor: Login, count: int
) -> str:
    """A patient registered at the desk, seen by the physician, with ``count``
    Observations: the patient's id."""
    patient = _create(
        server,
        token_for(server.url, desk),
        {
            "resourceType": "Patient",
            "identifier": [{"system": "http://carevault.hk/sid/hkid", "value": "P103498(0)"}],
            "name": [{"family": "Ma", "given": ["Siu Ying"]}],
            "gender": "female",
            "birthDate": "1979-05-04",
        },
    )
    doctor_token = token_for(server.url, doctor)
    _create(
        server,
        doctor_token,
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": f"Patient/{patient['id']}"},
            "serviceProvider": patient["managingOrganization"],
            "period": {"start": "2026-11-30T10:00:00+08:00"},
        },
    )
    for index in range(count):
        _create(
            server,
            doctor_token,
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": f"Body weight {index}"},
                "subject": {"reference": f"Patient/{patient['id']}"},
            },
        )
    return str(patient["id"])


def _launch(
    driver: WebDriver,
    app: str,
    server: RunningServer,
    scope: str,
    login: Login,
    patient_id: str | None = None,
) -> dict[str, Any]:
    """The app launched standalone; the clinician signs in (and picks ``patient_id``);
    what the app then found (``window.appDone``)."""
    driver.get(f"{app}/launch.html?" + urlencode({"iss": server.fhir, "scope": scope}))
    WebDriverWait(driver, 15).until(lambda d: "/auth/authorize" in d.current_url)
    driver.find_element(By.NAME, "username").send_keys(login.username)
    driver.find_element(By.NAME, "password").send_keys(login.password)
    driver.find_element(By.NAME, "totp").send_keys(fresh_code(login))
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    if patient_id is not None:
        choose = f"button[name=patient][value='{patient_id}']"
        WebDriverWait(driver, 15).until(lambda d: d.find_elements(By.CSS_SELECTOR, choose))
        driver.find_element(By.CSS_SELECTOR, choose).click()
    WebDriverWait(driver, 20).until(lambda d: d.execute_script("return !!window.appDone"))
    found: dict[str, Any] = driver.execute_script("return window.appDone")
    return found


def _app_request(driver: WebDriver, path: str) -> dict[str, Any]:
    driver.set_script_timeout(20)
    result: dict[str, Any] = driver.execute_async_script(_APP_REQUEST, path)
    return result


def test_a_client_js_app_in_chromium_signs_in_reads_refreshes_and_is_stopped(
    server: tuple[RunningServer, dict[str, str]], settings: Settings, tmp_path: Path
) -> None:
    running, env = server
    (desk, doctor), _clinic = colleagues(settings.home, "front_desk", "physician")
    colleague = next(
        login
        for login in demo_logins(settings.home)
        if login.role == "physician" and login.username != doctor.username
    )
    patient_id = _patient_with_observations(running, desk, doctor, 3)

    with (
        serving(_static(APP_FILES)) as app_page,
        serving(_static(APP_FILES)) as other_page,
        chromium(tmp_path / "downloads") as driver,
    ):
        # Served from 127.0.0.1 on their own ports: two origins, neither CareVault's.
        app = app_page.replace("localhost", "127.0.0.1")
        other = other_page.replace("localhost", "127.0.0.1")
        _register(env, APP_ID, app)
        _register(env, OTHER_APP_ID, other)
        time.sleep(0.3)  # the server's CORS list follows within 0.1 s

        # 1. A patient launch, as client-js's documentation has it.
        found = _launch(driver, app, running, PATIENT_LAUNCH, doctor, patient_id)

        assert "ready" not in found, found
        assert found["token"]["patient"] == patient_id == found["patientId"]
        assert found["token"]["token_type"] == "Bearer"
        assert 0 < found["token"]["expires_in"] <= 300
        assert found["token"]["refresh"] is True
        assert found["patient"] == patient_id
        # Three Observations in pages of two, followed by the library: all the patient's.
        assert found["observations"] == [f"Patient/{patient_id}"] * 3
        assert found["user"].startswith("Practitioner/")
        assert found["fhirUser"] == found["user"]
        claims = found["idToken"]
        assert claims["aud"] == APP_ID and claims["iss"] == running.url
        assert claims["fhirUser"] == f"{running.fhir}/{found['user']}"
        # client-js refreshes a public app with the refresh token alone.
        assert found["refresh"] == {"changed": True, "patient": patient_id, "refresh": True}
        assert found["afterRefresh"] == found["user"].split("/")[1]

        # 2. Another app's page, handed the first app's refresh token (a thief).
        stolen = driver.execute_script(
            "return window.smartClient.state.tokenResponse.refresh_token"
        )
        driver.get(f"{other}/vendor/README.md")  # any page of the other origin
        driver.set_script_timeout(20)
        naming_itself, alone = driver.execute_async_script(
            _TOKEN_CALLS,
            running.url,
            [
                {"grant_type": "refresh_token", "refresh_token": stolen, "client_id": OTHER_APP_ID},
                {"grant_type": "refresh_token", "refresh_token": stolen},
            ],
        )
        # Under its own name it is refused; alone, the token is a bearer credential of a
        # public app and works once, but its rotation gives the theft away:
        assert (naming_itself["status"], naming_itself["body"]["error"]) == (400, "invalid_grant")
        assert alone["status"] == 200
        thief_token = alone["body"]["access_token"]
        driver.back()
        WebDriverWait(driver, 20).until(lambda d: d.execute_script("return !!window.smartClient"))
        # ... the app's own next refresh presents the spent token: the session ends, for
        # the thief too.
        driver.execute_script(
            "window.smartClient.state.tokenResponse.refresh_token = arguments[0]", stolen
        )
        refreshed = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "window.smartClient.refresh().then(() => done('ok'))"
            ".catch(error => done(String(error)));"
        )
        assert "invalid_grant" in refreshed
        thief = httpx.get(
            f"{running.fhir}/Patient/{patient_id}",
            headers={"authorization": f"Bearer {thief_token}"},
            timeout=30,
        )
        assert thief.status_code == 401

        # 3. A user-level launch of a colleague, then the colleague suspended.
        driver.execute_script("sessionStorage.clear()")
        user_level = _launch(driver, app, running, USER_LAUNCH, colleague)
        assert user_level["token"]["patient"] is None and user_level["patientId"] is None
        assert user_level["practitioners"] == 2  # two pages of one
        assert user_level["refresh"]["changed"] is True
        assert "ok" in _app_request(driver, user_level["user"])
        _cli(env, "staff", "suspend", colleague.username, "--reason", "round 69 test")
        deadline = time.monotonic() + 5
        while True:
            after = _app_request(driver, user_level["user"])
            if "error" in after or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        # client-js met the 401, tried its refresh token, was refused, and says so.
        assert "error" in after, after

        # 4. A clinician who declines on the sign-in page: the app is told, with its state.
        driver.execute_script("sessionStorage.clear()")
        driver.get(f"{app}/launch.html?" + urlencode({"iss": running.fhir, "scope": USER_LAUNCH}))
        WebDriverWait(driver, 15).until(lambda d: "/auth/authorize" in d.current_url)
        driver.find_element(By.CSS_SELECTOR, "button[name=cancel]").click()
        WebDriverWait(driver, 20).until(lambda d: d.execute_script("return !!window.appDone"))
        declined = driver.execute_script("return window.appDone")
        assert "access_denied" in declined["ready"]["error"], declined
