"""Adversary round 61 on the console (SQLite and PostgreSQL): staff, a clinic manager, a
page the officer visits while signed in, an insider who writes what the console shows,
and someone holding a console cookie.

Fixed here:

* A page on the same *site* (another port of the host, a sibling name of the group's
  domain: ``SameSite=Strict`` sends the cookie to it) made the officer's browser open a
  patient's access report (a gate read of the patient in the officer's name, for a
  purpose the officer never stated), or an incident's first scope run, with a link or an
  ``<img>``. The console now answers only requests its own pages make, or that the
  officer typed (Fetch Metadata), and records the refusal.
* A report path whose id ran past 64 characters opened the patient of its first 64 and
  named the download after the whole path (``"`` and ``;`` included): the id is now a
  FHIR id or nothing is opened.

The others are guards (marked so): they held on the code as it was.
"""

from __future__ import annotations

from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller
from carevault.ledger.events import Tag
from carevault.vault.writer import Put
from tests.integration.web.console.conftest import Browser
from tests.support.console import (
    CHAN,
    CLINIC_A,
    MRN_SYSTEM,
    MovableClock,
    Person,
    add_person,
    csrf_of,
    ledger_events,
    sign_in,
)

pytestmark = pytest.mark.postgres


def _reads_of(svc: Services, patient_id: str, principal: str) -> list[dict[str, Any]]:
    """Ledger entries in which ``principal`` touched ``patient_id``'s record."""
    return [
        entry
        for entry in ledger_events(svc)
        if entry.get("principal") == principal
        and patient_id in (entry.get("resource_id"), entry.get("patient_pseudonym"))
    ]


@pytest.mark.parametrize("mode", ["navigate", "no-cors"])
def test_a_same_site_page_does_not_open_a_patients_report_in_the_officers_name(
    signed_in: Browser, console_services: Services, officer: Person, mode: str
) -> None:
    """http://localhost:8081 (any other service on the host), or blog.clinic.example
    beside console.clinic.example, is the same site: a link or an ``<img>`` there is
    sent with the ``SameSite=Strict`` cookie. The browser says where it came from."""
    svc = console_services
    client = signed_in(officer)
    principal = f"staff:{officer.username}"
    before = len(_reads_of(svc, CHAN.patient_id, principal))
    planted = {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": mode, "Sec-Fetch-Dest": "image"}
    for path in (
        f"/console/patients/{CHAN.patient_id}?purpose=HCOMPL",
        f"/console/patients/{CHAN.patient_id}/report.json",
        f"/console/patients/{CHAN.patient_id}/letter.pdf",
    ):
        answer = client.get(path, headers=planted, follow_redirects=False)
        assert answer.status_code == 403, (path, answer.status_code)
        assert CHAN.english_name not in answer.text
    # Nothing of the patient was read in the officer's name; the refusal is recorded.
    assert len(_reads_of(svc, CHAN.patient_id, principal)) == before
    refused = [e for e in ledger_events(svc) if e["tag"] == Tag.CONSOLE_REQUEST_REFUSED]
    assert refused and refused[-1]["principal"] == principal
    # The session goes on: the officer's own pages, a typed address, a script without
    # Fetch Metadata (an old browser: SameSite is then the defence) still work.
    for header in ({"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}, {}):
        opened = client.get(f"/console/patients/{CHAN.patient_id}", headers=header)
        assert opened.status_code == 200 and CHAN.english_name in opened.text


def test_a_same_site_page_does_not_run_an_incidents_first_scope(
    signed_in: Browser, console_services: Services, officer: Person
) -> None:
    from carevault.incidents import Actor, incidents_for
    from carevault.incidents.model import Compromised

    svc = console_services
    incident = incidents_for(svc).declare(
        Actor(f"staff:{officer.username}", "127.0.0.1"),
        "A desk read too much",
        since_us=svc.now_us() - 3_600_000_000,
        until_us=None,
        compromised=Compromised(clinics=(CLINIC_A,)),
    )
    client = signed_in(officer)
    answer = client.get(
        f"/console/incidents/{incident.incident_id}/scope",
        headers={"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "no-cors"},
        follow_redirects=False,
    )
    assert answer.status_code == 403
    assert not [e for e in ledger_events(svc) if e["tag"] == Tag.INCIDENT_SCOPED]


def test_a_cross_site_link_still_leads_to_sign_in_and_back(
    browser: Browser, console_services: Services, officer: Person
) -> None:
    """Guard (held, kept so the fix above does not break it): a link in a web mail is
    cross-site, so the browser sends no cookie; the console asks to sign in and returns
    to the page."""
    client = browser()
    answer = client.get(
        f"/console/patients/{CHAN.patient_id}",
        headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/console/sign-in?why=required&next=")


def _patient_with_a_long_id(svc: Services) -> str:
    patient_id = "p" * 64
    resource = {
        "resourceType": "Patient",
        "id": patient_id,
        "identifier": [{"system": MRN_SYSTEM, "value": "TM-0000099"}],
        "name": [{"text": "Lee Ka Yan"}],
        "managingOrganization": {"reference": f"Organization/{CLINIC_A}"},
    }
    svc.gate.write(
        Caller(principal="system:test"), [Put(RESOURCE_TYPES["Patient"], patient_id, resource)]
    )
    return patient_id


@pytest.mark.parametrize("download", ["report.json", "letter.pdf"])
def test_a_report_path_longer_than_an_id_opens_nothing(
    signed_in: Browser, console_services: Services, officer: Person, download: str
) -> None:
    svc = console_services
    patient_id = _patient_with_a_long_id(svc)
    client = signed_in(officer)
    principal = f"staff:{officer.username}"
    tail = "\"; filename*=UTF-8''report.html; x=\""
    for path in (
        f"/console/patients/{patient_id}{tail}/{download}",
        f"/console/patients/{patient_id}{tail}",
    ):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code in (400, 404), (path, answer.status_code)
        assert "report.html" not in answer.headers.get("content-disposition", "")
        assert "Lee Ka Yan" not in answer.text
    assert _reads_of(svc, patient_id, principal) == []


HOSTILE_NAME = "<img src=x onerror=alert(1)>陳\"大文'<script>alert(2)</script>"
HOSTILE_LINE = '"><svg onload=alert(3)>javascript:alert(4)'


def test_hostile_text_in_a_patients_record_is_shown_as_text(
    signed_in: Browser, console_services: Services, officer: Person
) -> None:
    """Guard (held): a desk writes a name, an address and an email that are markup, in
    Chinese and in attribute-breaking quotes; the finder and the report show them as
    text (Jinja2 escapes every value; no value lands in an href or an htmx attribute)."""
    svc = console_services
    resource = {
        "resourceType": "Patient",
        "id": "pt-hostile",
        "identifier": [{"system": MRN_SYSTEM, "value": "TM-0000077"}],
        "name": [{"text": HOSTILE_NAME}],
        "telecom": [{"system": "email", "value": "javascript:alert(5)//@x.example"}],
        "address": [{"line": [HOSTILE_LINE]}],
        "managingOrganization": {"reference": f"Organization/{CLINIC_A}"},
    }
    svc.gate.write(
        Caller(principal="system:test"), [Put(RESOURCE_TYPES["Patient"], "pt-hostile", resource)]
    )
    client = signed_in(officer)
    found = client.post(
        "/console/patients",
        data={
            "csrf": csrf_of(client.get("/console/patients").text),
            "identifier": "TM-0000077",
            "purpose": "PATRQT",
        },
    )
    report = client.get("/console/patients/pt-hostile")
    for text in (found.text, report.text):
        assert "陳&#34;大文" in text or "陳&quot;大文" in text
        for raw in ("<img src=x", "<script>alert", "<svg onload", 'href="javascript'):
            assert raw not in text


@pytest.mark.parametrize(
    "next_path",
    [
        "//evil.example/",
        "https://evil.example/",
        "/console//evil.example/",
        "/\\evil.example/",
        "/console/../..//evil.example/",
        "javascript:alert(1)",
    ],
)
def test_sign_in_never_sends_the_officer_to_another_site(
    browser: Browser, officer: Person, next_path: str
) -> None:
    """Guard (held): wherever ``next`` points, the browser lands on this host."""
    from urllib.parse import urljoin, urlsplit

    client = browser()
    page = client.get("/console/sign-in", params={"next": next_path})
    answer = client.post(
        "/console/sign-in",
        data={
            "csrf": csrf_of(page.text),
            "username": officer.username,
            "password": officer.password,
            "totp": officer.code(),
            "next": next_path,
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303
    landed = urlsplit(urljoin("http://localhost/console/sign-in", answer.headers["location"]))
    assert (landed.scheme, landed.netloc) == ("http", "localhost")


def test_a_planted_cookie_is_never_the_session_signed_in(
    browser: Browser, console_services: Services, officer: Person
) -> None:
    """Guard (held): session fixation. A value set in the browser before sign-in is
    replaced by a fresh secret, and opens nothing itself."""
    client = browser()
    client.cookies.set("carevault-console", "planted-by-someone", domain="localhost")
    answer = sign_in(client, officer)
    assert answer.status_code == 303
    issued = answer.cookies.get("carevault-console")
    assert issued and issued != "planted-by-someone"
    assert console_services.console.resolve("planted-by-someone") is None


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.NURSE, Role.PHYSICIAN])
def test_staff_with_correct_credentials_get_no_console_and_no_session(
    browser: Browser, console_services: Services, clock: MovableClock, role: Role
) -> None:
    """Guard (held): a desk, a nurse, a doctor sign in with a good password and code: no
    cookie, no session left open for them, the refusal recorded."""
    person = add_person(console_services, clock, f"staff{role.value[:3]}9", role, [CLINIC_A])
    client = browser()
    answer = sign_in(client, person)
    assert answer.status_code == 403
    assert "carevault-console" not in answer.cookies
    assert console_services.sessions.list_for(person.account_id) == []
    assert client.get("/console/dashboard", follow_redirects=False).status_code == 303
    refused = [
        e for e in ledger_events(console_services) if e["tag"] == Tag.CONSOLE_SIGN_IN_REFUSED
    ]
    assert refused[-1]["principal"] == f"staff:{person.username}"


def test_a_client_apps_name_and_id_are_text_on_the_staff_and_containment_pages(
    signed_in: Browser, console_services: Services, officer: Person
) -> None:
    """Guard (held): an app registered with a name that is markup (in Chinese, with
    quotes) is text on the staff page and among the containment page's choices."""
    console_services.clients.add(
        "lab-app",
        '化驗室"><img src=x onerror=alert(1)><script>alert(2)</script>',
        confidential=False,
        scopes="user/Patient.rs",
        redirect_uris=["https://lab.example/callback"],
        clinic_ids=[CLINIC_A],
    )
    client = signed_in(officer)
    pages = [
        client.get("/console/staff").text,
        client.get("/console/containment/start?mode=client-revoked").text,
    ]
    for text in pages:
        assert "化驗室&#34;&gt;&lt;img" in text or "化驗室&quot;&gt;&lt;img" in text
        assert "<img src=x" not in text and "<script>alert" not in text


def test_signing_in_again_ends_the_session_the_browser_held(
    browser: Browser, console_services: Services, officer: Person
) -> None:
    """Someone copied the officer's cookie (a shared screen, a synced profile); the
    officer signs in again in that browser, whose cookie is then replaced: the copied
    one must open nothing more."""
    svc = console_services
    client = browser()
    assert sign_in(client, officer).status_code == 303
    copied = client.cookies.get("carevault-console")
    assert copied and svc.console.resolve(copied) is not None
    assert sign_in(client, officer).status_code == 303
    assert client.cookies.get("carevault-console") != copied
    assert svc.console.resolve(copied) is None
    assert len(svc.sessions.list_for(officer.account_id)) == 1
