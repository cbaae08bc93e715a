"""Adversary round 61 in headless Chromium: what a real browser sends and keeps.

* A page on another port of the same host (the same *site*: ``SameSite=Strict`` sends
  the console's cookie with its requests) puts ``<img src=".../console/patients/ID">``
  in front of a signed-in officer: the browser opened the patient's access report, a
  gate read of the patient in the officer's name. Fixed: the console refuses what the
  browser says another site asked for (``Sec-Fetch-Site``), and records it.
* Guard (held): after signing out, the browser's Back button shows no patient (every
  console page is ``no-store``; the page is asked for again and the console asks to
  sign in).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from selenium.webdriver.remote.webdriver import WebDriver
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from carevault.bootstrap import Services, build_services
from carevault.domain.roles import Role
from carevault.ledger.events import Tag
from carevault.web.app import create_app
from tests.conftest import BACKENDS, make_settings
from tests.e2e.console.browser import (
    chromium,
    click,
    fill,
    serving,
    text_of,
    wait_for_text,
)
from tests.e2e.console.test_officer_in_browser import _database
from tests.support.console import (
    CHAN,
    CLINIC_A,
    MovableClock,
    Person,
    add_person,
    ledger_events,
    seed_clinics,
)

# What a client (or a browser) sees of the HTTP API: run on PostgreSQL, as production is; the
# storage under it is tested on both backends by the integration tests.
pytestmark = [pytest.mark.e2e, pytest.mark.only_backend("postgres")]


@dataclass
class Site:
    services: Services
    base: str
    officer: Person


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    with chromium(tmp_path_factory.mktemp("downloads")) as opened:
        yield opened


@pytest.fixture(scope="module", params=BACKENDS)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    backend = str(request.param)
    databases = _database(backend, request)
    url = next(databases)
    clock = MovableClock()
    settings = make_settings(tmp_path_factory.mktemp(f"home61-{backend}"), url)
    svc = build_services(settings, create_keys=True, migrate=True, clock=clock)
    seed_clinics(svc)
    officer = add_person(svc, clock, "officer1", Role.PRIVACY_OFFICER, [CLINIC_A])
    try:
        with serving(create_app(settings, svc)) as base:
            yield Site(svc, base, officer)
    finally:
        svc.close()
        next(databases, None)


def _sign_in(d: WebDriver, site: Site) -> None:
    d.get(site.base + "/console/sign-in")
    fill(d, "#username", site.officer.username)
    fill(d, "#password", site.officer.password)
    fill(d, "#totp", site.officer.code())
    click(d, "form[action='/console/sign-in'] button[type=submit]")
    wait_for_text(d, "Audit ledgers")


def _sign_out(d: WebDriver, site: Site) -> None:
    d.get(site.base + "/console/account")
    click(d, "form[action='/console/sign-out'] button[type=submit]")
    wait_for_text(d, "You have signed out.")


def _reads_of_chan(svc: Services, principal: str) -> int:
    return sum(
        1
        for entry in ledger_events(svc)
        if entry.get("principal") == principal
        and CHAN.patient_id in (entry.get("resource_id"), entry.get("patient_pseudonym"))
    )


def _foreign_page(target: str) -> Any:
    """Another service on the same host: an image and a link into the console."""
    body = (
        "<!doctype html><title>Staff canteen menu</title>"
        f'<img alt="" src="{target}">'
        f'<p><a id="go" href="{target}">Today\'s menu</a></p>'
    )

    async def menu(_request: Any) -> HTMLResponse:
        return HTMLResponse(body)

    return Starlette(routes=[Route("/", menu)])


def test_a_page_on_another_port_does_not_open_a_patient_in_the_officers_name(
    driver: WebDriver, site: Site
) -> None:
    d, svc = driver, site.services
    principal = f"staff:{site.officer.username}"
    _sign_in(d, site)
    before = _reads_of_chan(svc, principal)
    target = f"{site.base}/console/patients/{CHAN.patient_id}"
    with serving(_foreign_page(target)) as elsewhere:
        assert elsewhere.split(":")[1] == site.base.split(":")[1]  # the same host
        d.get(elsewhere + "/")
        assert d.execute_script("return document.readyState") == "complete"
        # The image was asked for before the page's load event: no read in their name.
        assert _reads_of_chan(svc, principal) == before
        click(d, "#go")
        wait_for_text(d, "Opened from another site")
        assert CHAN.english_name not in text_of(d)
    assert _reads_of_chan(svc, principal) == before
    refused = [e for e in ledger_events(svc) if e["tag"] == Tag.CONSOLE_REQUEST_REFUSED]
    assert len(refused) >= 2 and refused[-1]["principal"] == principal
    # Typed into the address bar, the page opens as ever.
    d.get(target)
    wait_for_text(d, CHAN.english_name)
    _sign_out(d, site)


def test_back_after_signing_out_shows_no_patient(driver: WebDriver, site: Site) -> None:
    """Guard (held)."""
    d = driver
    _sign_in(d, site)
    d.get(f"{site.base}/console/patients/{CHAN.patient_id}")
    wait_for_text(d, CHAN.english_name)
    click(d, "form[action='/console/sign-out'] button[type=submit]")
    wait_for_text(d, "You have signed out.")
    d.back()
    wait_for_text(d, "Sign in")
    assert CHAN.english_name not in text_of(d)
    assert "/console/sign-in" in d.current_url
