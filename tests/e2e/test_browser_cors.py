"""A browser SMART app in headless Chromium: its page, on its own origin, calls CareVault
with fetch(). Chromium sends the preflights and enforces the answers: a registered app's
page reads the responses; another origin's page is blocked by the browser itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.remote.webdriver import WebDriver
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from carevault.bootstrap import build_services
from carevault.web.app import create_app
from tests.conftest import make_settings
from tests.e2e.console.browser import chromium, serving

pytestmark = pytest.mark.e2e

#: Runs in the app's page: each call's status and what the page may read, or the error
#: the browser gave the page instead.
_CALLS = """
const server = arguments[0];
const done = arguments[arguments.length - 1];
const results = {};
async function attempt(name, url, init) {
  try {
    const response = await fetch(url, init);
    results[name] = {status: response.status,
                     challenge: response.headers.get('www-authenticate'),
                     body: await response.text()};
  } catch (error) {
    results[name] = {blocked: String(error)};
  }
}
(async () => {
  const bearer = {'Authorization': 'Bearer not-a-token', 'Accept': 'application/fhir+json'};
  await attempt('fhir', server + '/fhir/Patient', {headers: bearer});
  await attempt('token', server + '/auth/token',
                {method: 'POST', headers: {'Content-Type': 'application/x-www-form-urlencoded'},
                 body: 'grant_type=authorization_code&code=x&client_id=browser-app'});
  await attempt('discovery', server + '/.well-known/smart-configuration', {});
  done(results);
})();
"""


def _page() -> Starlette:
    async def index(_request: Any) -> HTMLResponse:
        return HTMLResponse("<!doctype html><title>app</title><p>app</p>")

    return Starlette(routes=[Route("/", index), Route("/callback", index)])


def _calls(driver: WebDriver, page: str, server: str) -> dict[str, Any]:
    driver.get(page + "/")
    driver.set_script_timeout(30)
    result: dict[str, Any] = driver.execute_async_script(_CALLS, server)
    return result


def test_chromium_lets_a_registered_apps_page_read_answers_and_blocks_other_pages(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path / "home", None, cors_refresh_seconds=0.01)
    services = build_services(settings, create_keys=True, migrate=True)
    try:
        with (
            serving(create_app(settings, services)) as server,
            serving(_page()) as app_page,
            serving(_page()) as stranger_page,
            chromium(tmp_path / "downloads") as driver,
        ):
            # The app's page is served from 127.0.0.1, CareVault from localhost: two origins.
            app_origin = app_page.replace("localhost", "127.0.0.1")
            stranger_origin = stranger_page.replace("localhost", "127.0.0.1")
            services.clients.add(
                "browser-app",
                "Browser app",
                confidential=False,
                scopes="user/*.rs",
                redirect_uris=[f"{app_origin}/callback"],
            )

            allowed = _calls(driver, app_origin, server)
            refused = _calls(driver, stranger_origin, server)
    finally:
        services.close()

    assert allowed["fhir"]["status"] == 401
    assert allowed["fhir"]["challenge"].startswith("Bearer")
    assert '"resourceType":"OperationOutcome"' in allowed["fhir"]["body"]
    assert allowed["token"]["status"] == 400
    assert "invalid_grant" in allowed["token"]["body"]
    assert allowed["discovery"]["status"] == 200
    assert "sso-openid-connect" in allowed["discovery"]["body"]
    for name in ("fhir", "token", "discovery"):
        assert "blocked" in refused[name], (name, refused[name])
