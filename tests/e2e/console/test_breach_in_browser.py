"""A breach, from the alert to the notices, in headless Chromium (SQLite and PostgreSQL).

A front desk account reads patients in bulk through the FHIR API of the running
server until the release budget refuses it; the detectors raise an alert. The privacy
officer signs in with a TOTP code, sees the alert on the dashboard, opens it and its
evidence, suspends the account with a fresh code, declares an incident from the alert,
opens the scope report, starts the notices (a real SMTP server, aiosmtpd, on loopback)
and watches their progress, checks a notice's code on the public /verify page in both
languages, and signs out. Each page is screenshotted, checked with axe-core and timed
by the browser, into ``output/breach-<backend>/``. Last, an incident page left open while
notices are being sent is signed out after the idle time, its polls notwithstanding.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from carevault.bootstrap import Services, build_services
from carevault.containment.state import Mode
from carevault.domain.roles import Role
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller
from carevault.incidents import declare_case
from carevault.incidents.service import Actor
from carevault.notify.store import NoticeStore
from carevault.vault.writer import Put
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
from tests.e2e.console.test_officer_in_browser import _database
from tests.support.console import CLINIC_A, MovableClock, Person, add_person, seed_clinics
from tests.support.notify import MailSink, smtp_server
from tests.support.staff import Staff, make_staff

# What a client (or a browser) sees of the HTTP API: run on PostgreSQL, as production is; the
# storage under it is tested on both backends by the integration tests.
pytestmark = [pytest.mark.e2e, pytest.mark.only_backend("postgres")]

BUDGET = 5
PATIENTS = 8
CODE = re.compile(r"\b[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\b")


@dataclass
class Breach:
    backend: str
    services: Services
    base: str
    officer: Person
    desk: Staff
    patients: list[str]
    names: list[str]
    sink: MailSink


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebDriver, Path]]:
    downloads = tmp_path_factory.mktemp("downloads")
    with chromium(downloads) as opened:
        yield opened, downloads


def _patients(svc: Services) -> tuple[list[str], list[str]]:
    """Patients of clinic A with an email address each (the notices go by email)."""
    ids = [f"pt-e2e-{n}" for n in range(PATIENTS)]
    names = [f"Cheung Ka Ho {n}" for n in range(PATIENTS)]
    svc.gate.write(
        Caller(principal="system:test"),
        [
            Put(
                RESOURCE_TYPES["Patient"],
                patient_id,
                {
                    "resourceType": "Patient",
                    "id": patient_id,
                    "name": [{"family": "Cheung", "given": [f"Ka Ho {n}"], "text": name}],
                    "telecom": [{"system": "email", "value": f"patient{n}@example.org"}],
                    "birthDate": "1975-02-03",
                    "managingOrganization": {"reference": f"Organization/{CLINIC_A}"},
                },
            )
            for n, (patient_id, name) in enumerate(zip(ids, names, strict=True))
        ],
    )
    return ids, names


@pytest.fixture(scope="module", params=BACKENDS)
def breach(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    driver: tuple[WebDriver, Path],
) -> Iterator[Breach]:
    backend = str(request.param)
    databases = _database(backend, request)
    url = next(databases)
    clock = MovableClock()
    home = tmp_path_factory.mktemp(f"breach-{backend}")
    smtp, sink = smtp_server(home / "journal")
    settings = make_settings(
        home / "home",
        url,
        release_budget=f"front_desk={BUDGET}/{BUDGET * 4}",
        # The officer contains by hand in this story: the detectors only raise.
        detect_responses="low=raise,medium=raise,high=raise,critical=raise",
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_from="notices@clinics.example.hk",
        notify_journal_dir=home / "journal",
        notify_letters_dir=home / "letters",
        notify_rate=50.0,
        notify_retry_seconds=0.05,
    )
    svc = build_services(settings, create_keys=True, migrate=True, clock=clock)
    seed_clinics(svc)
    officer = add_person(svc, clock, "officer1", Role.PRIVACY_OFFICER, [CLINIC_A])
    desk = make_staff(svc, Role.FRONT_DESK, [CLINIC_A])
    ids, names = _patients(svc)
    # As `carevault serve` does: the detectors (and the checkpoint schedule) on threads.
    svc.start_background()
    try:
        with serving(create_app(settings, svc)) as base:
            yield Breach(backend, svc, base, officer, desk, ids, names, sink)
    finally:
        svc.close()
        smtp.stop()
        next(databases, None)


@pytest.fixture(scope="module")
def pages(breach: Breach, driver: tuple[WebDriver, Path]) -> PageCheck:
    directory = OUTPUT / f"breach-{breach.backend}"
    directory.mkdir(parents=True, exist_ok=True)
    return PageCheck(driver[0], directory, f"breach-{breach.backend}")


def _bulk_read(breach: Breach) -> list[int]:
    """The front desk opens every patient through the API until the budget refuses."""
    statuses = []
    with httpx.Client(base_url=breach.base, headers=breach.desk.headers, timeout=30) as api:
        for patient_id in breach.patients:
            statuses.append(api.get(f"/fhir/Patient/{patient_id}").status_code)
    return statuses


def _alert(d: WebDriver, pages: PageCheck, breach: Breach) -> None:
    statuses = _bulk_read(breach)
    assert statuses[:BUDGET] == [200] * BUDGET and 429 in statuses[BUDGET:], statuses
    # The detectors run on the server's own thread: the alert comes without a push.
    deadline = time.monotonic() + 20
    detection = breach.services.detection
    assert detection is not None
    while not detection.alerts.list() and time.monotonic() < deadline:
        time.sleep(0.2)
    pages.visit(breach.base, "/console/dashboard")
    wait_for_text(d, "Open alert cases")
    assert "High" in text_of(d)
    pages.check("b02-dashboard-alert")
    click(d, "a[href='/console/alerts']")
    wait_for_url(d, "/console/alerts")
    assert breach.desk.account.username in text_of(d)
    pages.check("b03-alerts")
    click(d, "a[href^='/console/alerts/']")
    wait_for_text(d, "Evidence in the audit ledger")
    body = text_of(d)
    assert "release budget" in body.lower() or "budget" in body.lower()
    for name in breach.names:
        assert name not in d.page_source
    pages.check("b04-alert")


def _contain(d: WebDriver, pages: PageCheck, breach: Breach) -> str:
    alert_url = d.current_url
    click(d, "#contain-account")
    wait_for_text(d, "What this will do")
    pages.check("b05-contain-account")
    fill(d, "#reason", "Bulk read of patient records past the release budget")
    fill(d, "#start-totp", breach.officer.code())
    click(d, "form[action='/console/containment/start'] button[type=submit]")
    wait_for_url(d, "done=started-")
    active = breach.services.containment.refresh().active
    assert [i.target for i in active if i.mode is Mode.ACCOUNT_SUSPENDED] == [
        breach.desk.account.username
    ]
    return alert_url


def _declare(d: WebDriver, pages: PageCheck, breach: Breach, alert_url: str) -> str:
    d.get(alert_url)
    wait_for_text(d, "is suspended")
    click(d, "form[action$='/declare'] button[type=submit]")
    wait_for_url(d, "done=declared")
    assert "The incident is declared." in text_of(d)
    pages.check("b06-incident")
    return d.current_url.split("?")[0]


def _scope(d: WebDriver, pages: PageCheck, breach: Breach) -> None:
    click(d, "#open-scope")
    wait_for_text(d, "people had their data shown or decrypted")
    assert f"{BUDGET} people had their data shown" in text_of(d)
    assert d.find_elements(By.CSS_SELECTOR, ".chart-wrap svg")
    assert "Run 1" in text_of(d)
    pages.check("b07-scope")
    # The page showed the kept run; Recompute keeps a new one and shows it.
    click(d, "#recompute")
    wait_for_url(d, "done=recomputed")
    assert "Recomputed: this is run 2." in text_of(d)
    assert f"{BUDGET} people had their data shown" in text_of(d)


def _notices(d: WebDriver, pages: PageCheck, breach: Breach, incident_url: str) -> str:
    d.get(incident_url)
    pages.wait_loaded()
    fill(d, "#notices-totp", breach.officer.code())
    click(d, "#start-notices")
    wait_for_url(d, "done=notices")
    # htmx polls the progress panel until the job has finished.
    WebDriverWait(d, 60).until(lambda x: "Finished" in text_of(x))
    assert f"{BUDGET} of {BUDGET} handled" in text_of(d)
    # Sending opened the regulators' clocks: the page, loaded again, shows them.
    d.get(incident_url + "#notices")
    wait_for_text(d, "h left")
    pages.check("b08-notices")
    messages = breach.sink.parsed()
    assert len(messages) == BUDGET
    _, message, _ = messages[0]
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    found = CODE.findall(body.get_content())
    assert found
    return str(found[0])


def _verify(d: WebDriver, pages: PageCheck, breach: Breach, code: str) -> None:
    pages.visit(breach.base, "/verify?lang=en")
    pages.check("b09-verify")
    fill(d, "#code", code)
    click(d, "form[action='/verify'] button[type=submit]")
    wait_for_text(d, "Genuine.")
    pages.check("b10-verify-genuine")
    pages.visit(breach.base, "/verify?lang=zh")
    fill(d, "#code", code)
    click(d, "form[action='/verify'] button[type=submit]")
    wait_for_text(d, "真確")
    pages.check("b11-verify-zh")


def _sign_in(d: WebDriver, pages: PageCheck, breach: Breach) -> None:
    pages.visit(breach.base, "/console/alerts")
    assert "/console/sign-in" in d.current_url
    fill(d, "#username", breach.officer.username)
    fill(d, "#password", breach.officer.password)
    fill(d, "#totp", breach.officer.code())
    click(d, "form[action='/console/sign-in'] button[type=submit]")
    wait_for_url(d, "/console/alerts")
    pages.check("b01-alerts-quiet")


def _sign_out(d: WebDriver, pages: PageCheck, breach: Breach, incident_url: str) -> None:
    pages.visit(breach.base, "/console/incidents")
    pages.check("b12-incidents")
    d.get(incident_url)
    click(d, "form[action='/console/sign-out'] button[type=submit]")
    wait_for_text(d, "You have signed out.")
    d.get(incident_url)
    pages.wait_loaded()
    assert "/console/sign-in" in d.current_url


def test_a_breach_from_alert_to_notices(
    breach: Breach, pages: PageCheck, driver: tuple[WebDriver, Path]
) -> None:
    d = driver[0]
    d.delete_all_cookies()
    _sign_in(d, pages, breach)
    _alert(d, pages, breach)
    alert_url = _contain(d, pages, breach)
    incident_url = _declare(d, pages, breach, alert_url)
    _scope(d, pages, breach)
    code = _notices(d, pages, breach, incident_url)
    _verify(d, pages, breach, code)
    _sign_out(d, pages, breach, incident_url)


def test_no_breach_page_has_a_serious_accessibility_violation(pages: PageCheck) -> None:
    assert len({item["page"] for item in pages.timings}) >= 12
    assert pages.serious() == []


def test_breach_page_timings_are_reported(pages: PageCheck) -> None:
    report = pages.write_report()
    assert all(item["rendered_ms"] > 0 for item in pages.timings)
    assert report.read_text(encoding="utf-8").count("| ") >= len(pages.timings)


def _polls(d: WebDriver) -> int:
    return int(d.execute_script("return window.carevaultPolls || 0"))


def test_a_screen_left_on_the_notices_being_sent_is_signed_out_when_idle(
    breach: Breach, driver: tuple[WebDriver, Path]
) -> None:
    """The incident page polls its notice panel every two seconds while the notices are
    being sent (here a job whose lease another process holds). The polls are the page's,
    not the officer's: an officer who walks away from the page is signed out after the
    idle time, the next poll answered with the sign-in, where htmx takes the browser.
    Each poll counted before, and the screen stayed signed in as long as the job ran."""
    d = driver[0]
    d.delete_all_cookies()
    svc = breach.services
    incident = declare_case(
        svc,
        Actor("staff:officer1"),
        {
            "title": "left open",
            "since": "2026-01-01T00:00",
            "accounts": [breach.desk.account.username],
        },
    )
    assert NoticeStore(svc.engine).start_job(
        str(incident.incident_id), ["confirmed"], 40, svc.now_us(),
        owner="cli:elsewhere", lease_us=86_400_000_000,
    )  # fmt: skip
    incident_path = f"/console/incidents/{incident.incident_id}"
    d.get(breach.base + incident_path)
    wait_for_url(d, "/console/sign-in")
    fill(d, "#username", breach.officer.username)
    fill(d, "#password", breach.officer.password)
    fill(d, "#totp", breach.officer.code())
    click(d, "form[action='/console/sign-in'] button[type=submit]")
    wait_for_url(d, incident_path)
    wait_for_text(d, "Sending…")
    # Counts the polls answered (WebDriver's script is not the page's: the CSP allows it).
    d.execute_script(
        "document.body.addEventListener('htmx:afterRequest',"
        " function () { window.carevaultPolls = (window.carevaultPolls || 0) + 1; });"
    )
    idle = svc.settings.console_idle_minutes * 60
    breach.officer.clock.advance(idle - 30)
    answered = _polls(d)
    WebDriverWait(d, 10).until(lambda x: _polls(x) >= answered + 2)
    assert incident_path in d.current_url and "Sending…" in text_of(d)
    breach.officer.clock.advance(31)
    wait_for_url(d, "/console/sign-in?why=idle")
    assert svc.sessions.list_for(breach.officer.account_id) == []
