"""The privacy officer's console in headless Chromium, on SQLite and on PostgreSQL.

One browser for the module. The flow: sign in with a TOTP code; the dashboard; start
and release a containment mode, each with a fresh code; suspend an account; review a
break-the-glass grant; find a patient by HKID, read their access report and download
its PDF letter; switch to Chinese; sign out. Every page is screenshotted, checked by
axe-core and timed by the browser (Navigation Timing), into ``output/<backend>/``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pypdf import PdfReader
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from carevault.bootstrap import Services, build_services
from carevault.containment.state import Mode
from carevault.domain.roles import Role
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.web.app import create_app
from tests.conftest import BACKENDS, make_settings
from tests.e2e.console.browser import (
    OUTPUT,
    PageCheck,
    chromium,
    click,
    fill,
    serving,
    text_of,
    wait_for_text,
    wait_for_url,
)
from tests.support.console import (
    CHAN,
    CLINIC_A,
    CLINIC_B,
    WONG,
    MovableClock,
    Person,
    add_person,
    seed_clinics,
)

# What a client (or a browser) sees of the HTTP API: run on PostgreSQL, as production is; the
# storage under it is tested on both backends by the integration tests.
pytestmark = [pytest.mark.e2e, pytest.mark.only_backend("postgres")]


@dataclass
class Site:
    backend: str
    services: Services
    base: str
    officer: Person
    physician: Person
    downloads: Path


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebDriver, Path]]:
    downloads = tmp_path_factory.mktemp("downloads")
    with chromium(downloads) as opened:
        yield opened, downloads


def _database(backend: str, request: pytest.FixtureRequest) -> Iterator[str | None]:
    if backend == "sqlite":
        yield None
        return
    database: str = request.getfixturevalue("pg_database")
    schema = f"console_{secrets.token_hex(4)}"
    engine = create_engine(database, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(database).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with engine.connect() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def _history(svc: Services, officer: Person, front_desk: Person, physician: Person) -> None:
    """What the dashboard and the reports show: reads, a break of the glass, a verify."""
    patient = RESOURCE_TYPES["Patient"]
    for _ in range(3):
        svc.gate.read(front_desk.caller, patient, CHAN.patient_id)
    svc.gate.break_glass(
        physician.caller,
        WONG.patient_id,
        "covering-for-colleague",
        "Covering the evening clinic for Dr Lam",
        emergency=False,
    )
    svc.gate.read(physician.caller, patient, WONG.patient_id)
    svc.gate.read(physician.caller, RESOURCE_TYPES["Condition"], "cond-2")
    svc.audit_ledger.checkpoints.make("test")
    for ledger in svc.ledgers():
        svc.verify_runs.verify(ledger, "cli:test")


@pytest.fixture(scope="module", params=BACKENDS)
def site(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    driver: tuple[WebDriver, Path],
) -> Iterator[Site]:
    backend = str(request.param)
    databases = _database(backend, request)
    url = next(databases)
    clock = MovableClock()
    settings = make_settings(tmp_path_factory.mktemp(f"home-{backend}"), url)
    svc = build_services(settings, create_keys=True, migrate=True, clock=clock)
    seed_clinics(svc)
    officer = add_person(svc, clock, "officer1", Role.PRIVACY_OFFICER, [CLINIC_A, CLINIC_B])
    front_desk = add_person(svc, clock, "desk1", Role.FRONT_DESK, [CLINIC_A])
    physician = add_person(svc, clock, "doctor1", Role.PHYSICIAN, [CLINIC_A])
    _history(svc, officer, front_desk, physician)
    try:
        with serving(create_app(settings, svc)) as base:
            yield Site(backend, svc, base, officer, physician, driver[1])
    finally:
        svc.close()
        next(databases, None)


@pytest.fixture(scope="module")
def pages(site: Site, driver: tuple[WebDriver, Path]) -> PageCheck:
    directory = OUTPUT / site.backend
    directory.mkdir(parents=True, exist_ok=True)
    return PageCheck(driver[0], directory, site.backend)


def _sign_in(d: WebDriver, pages: PageCheck, site: Site) -> None:
    pages.visit(site.base, "/console/dashboard")
    assert "/console/sign-in" in d.current_url, "a page without a session must ask to sign in"
    pages.check("01-sign-in")
    fill(d, "#username", site.officer.username)
    fill(d, "#password", site.officer.password)
    fill(d, "#totp", site.officer.code())
    click(d, "form[action='/console/sign-in'] button[type=submit]")
    wait_for_text(d, "Audit ledgers")
    assert d.current_url.endswith("/console/dashboard")
    pages.check("02-dashboard")


def _containment(d: WebDriver, pages: PageCheck, site: Site) -> None:
    pages.visit(site.base, "/console/containment")
    pages.check("03-containment")
    # The confirmation comes in through htmx, into the page.
    click(d, "a[href='/console/containment/start?mode=read-only']")
    WebDriverWait(d, 10).until(lambda x: x.find_elements(By.CSS_SELECTOR, "#start-panel form"))
    assert "Nothing can be created, changed or deleted" in text_of(d)
    fill(d, "#reason", "Suspicious bulk edits from clinic A")
    fill(d, "#start-totp", site.officer.code())
    click(d, "#start-panel button[type=submit]")
    wait_for_url(d, "done=started-")
    assert site.services.containment.refresh().read_only
    pages.check("04-containment-on")
    pages.visit(site.base, "/console/dashboard")
    assert "Read-only" in text_of(d)
    pages.visit(site.base, "/console/containment")
    click(d, "a[href$='/release']")
    wait_for_text(d, "What releasing will do")
    pages.check("05-containment-release")
    fill(d, "#release-reason", "Edits explained by the clinic manager")
    fill(d, "#release-totp", site.officer.code())
    click(d, "form[action$='/release'] button[type=submit]")
    wait_for_url(d, "done=released-")
    assert not site.services.containment.refresh().read_only


def _suspend(d: WebDriver, pages: PageCheck, site: Site) -> None:
    pages.visit(site.base, f"/console/staff?q={site.physician.username}")
    pages.check("06-staff")
    click(d, f"a[href='/console/staff/{site.physician.username}']")
    wait_for_url(d, f"/console/staff/{site.physician.username}")
    pages.check("07-staff-member")
    fill(d, "#sp-reason", "Opened a patient's record outside their clinic")
    fill(d, "#sp-totp", site.officer.code())
    click(d, "form[action$='/suspend'] button[type=submit]")
    wait_for_url(d, "done=suspended")
    account = site.services.accounts.find(site.physician.username)
    assert account is not None and account.suspended
    active = site.services.containment.refresh().active
    assert [item.target for item in active if item.mode is Mode.ACCOUNT_SUSPENDED] == [
        site.physician.username
    ]


def _review(d: WebDriver, pages: PageCheck, site: Site) -> None:
    pages.visit(site.base, "/console/break-glass")
    assert "Covering the evening clinic for Dr Lam" in text_of(d)
    pages.check("08-break-glass")
    # A finding is final: it takes a fresh code, as dismissing an alert does.
    fill(d, "form[action$='/review'] input[name=totp]", site.officer.code())
    click(d, "button[name=outcome][value=justified]")
    wait_for_text(d, "Recorded: justified.")
    assert site.services.break_glass.queue() == []


def _whole_pdf(path: Path) -> bool:
    return path.exists() and path.read_bytes().rstrip().endswith(b"%%EOF")


def _report(d: WebDriver, pages: PageCheck, site: Site) -> None:
    pages.visit(site.base, "/console/patients")
    pages.check("09-patients")
    fill(d, "#identifier", WONG.hkid)
    click(d, "form[action='/console/patients'] button[type=submit]")
    wait_for_text(d, "Patients found: 1")
    pages.check("10-patients-found")
    click(d, f"a[href^='/console/patients/{WONG.patient_id}']")
    wait_for_text(d, "Accesses to this record")
    body = text_of(d)
    assert site.physician.display_name in body and "Broke the glass" in body
    assert WONG.hkid not in d.page_source and WONG.condition not in d.page_source
    pages.check("11-patient-report")
    click(d, "a[href$='letter.pdf?lang=en']")
    letter = site.downloads / f"access-report-{WONG.patient_id}.pdf"
    # The browser may make the file before it has written it: read it once it is whole.
    deadline = time.monotonic() + 15
    while not _whole_pdf(letter) and time.monotonic() < deadline:
        time.sleep(0.1)
    words = "".join(page.extract_text() for page in PdfReader(letter).pages)
    assert "Who has opened your health record" in words
    assert WONG.english_name in words and WONG.hkid not in words
    letter.unlink()


def _language_and_sign_out(d: WebDriver, pages: PageCheck, site: Site) -> None:
    for path, name in (
        ("/console/alerts", "12-alerts"),
        ("/console/incidents", "13-incidents"),
        ("/console/account", "14-account"),
    ):
        pages.visit(site.base, path)
        assert path != "/console/alerts" or "No alert in this state." in text_of(d)
        pages.check(name)
    click(d, "button[name=language][value='zh-Hant']")
    wait_for_text(d, "我的帳戶")
    assert d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-Hant-HK"
    pages.visit(site.base, "/console/dashboard")
    assert "審計紀錄冊" in text_of(d)
    pages.check("15-dashboard-zh")
    pages.visit(site.base, "/console/containment")
    pages.check("16-containment-zh")
    click(d, "form[action='/console/sign-out'] button[type=submit]")
    wait_for_text(d, "You have signed out.")
    pages.check("17-signed-out")
    pages.visit(site.base, "/console/staff")
    assert "/console/sign-in" in d.current_url


def test_axe_finds_what_it_should(driver: tuple[WebDriver, Path], tmp_path: Path) -> None:
    """The accessibility check can fail: a page without a language and an image without
    a text alternative is caught."""
    checker = PageCheck(driver[0], tmp_path, "self-check")
    driver[0].get('data:text/html,<html><body><img src="x.png"></body></html>')
    found = {item["id"] for item in checker._axe()}
    assert {"html-has-lang", "image-alt"} <= found


def test_a_privacy_officers_day(
    site: Site, pages: PageCheck, driver: tuple[WebDriver, Path]
) -> None:
    d = driver[0]
    d.delete_all_cookies()
    _sign_in(d, pages, site)
    _containment(d, pages, site)
    _suspend(d, pages, site)
    _review(d, pages, site)
    _report(d, pages, site)
    _language_and_sign_out(d, pages, site)


def test_no_page_has_a_serious_accessibility_violation(pages: PageCheck) -> None:
    assert len({item["page"] for item in pages.timings}) >= 17
    assert pages.serious() == []


def test_page_timings_are_reported(pages: PageCheck) -> None:
    report = pages.write_report()
    assert all(item["rendered_ms"] > 0 for item in pages.timings)
    assert report.read_text(encoding="utf-8").count("| ") >= len(pages.timings)
