"""The console's pages per role, and each action through its service: what the ledger
records, what changes, and which patient fields can ever appear."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest
from pypdf import PdfReader

from carevault.bootstrap import Services
from carevault.config import Settings
from carevault.containment.state import Mode
from carevault.domain.roles import Role
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.ledger.events import AuditEvent, Outcome, Tag
from tests.conftest import make_settings, marked
from tests.integration.web.console.conftest import Browser
from tests.support.console import (
    CHAN,
    CLINIC_A,
    CLINIC_B,
    WONG,
    MovableClock,
    Person,
    add_person,
    csrf_of,
    ledger_events,
    sign_in,
)
from tests.support.staff import open_token

pytestmark = pytest.mark.postgres

OFFICER_PAGES = [
    "/console/dashboard",
    "/console/containment",
    "/console/containment/start?mode=clinic-lock",
    "/console/containment/start?mode=account-suspended",
    "/console/staff",
    "/console/staff/doctor1",
    "/console/break-glass",
    "/console/patients",
    f"/console/patients/{CHAN.patient_id}",
    f"/console/patients/{CHAN.patient_id}/report.json",
    "/console/account",
    "/console/alerts",
    "/console/incidents",
]
MANAGER_PAGES = [
    "/console/dashboard",
    "/console/containment",
    "/console/staff",
    "/console/staff/desk9",
    "/console/account",
]
OFFICER_ONLY = [
    "/console/break-glass",
    "/console/patients",
    f"/console/patients/{CHAN.patient_id}",
    f"/console/patients/{CHAN.patient_id}/letter.pdf",
    "/console/containment/start?mode=read-only",
    "/console/alerts",
    "/console/incidents",
]


def _never_shown(patient: object) -> list[str]:
    """Fields no console role may read: the HKID (in any spelling), the birth date, and
    anything clinical."""
    hkid = CHAN.hkid if patient is CHAN else WONG.hkid
    subject = CHAN if patient is CHAN else WONG
    return [hkid, re.sub(r"[()]", "", hkid), subject.birth_date, subject.condition]


@pytest.fixture
def settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """The clinics' names for letters come from here (not from Organization records)."""
    url = request.getfixturevalue("pg_schema") if backend == "postgres" else None
    return make_settings(
        tmp_path / "home", url,
        clinic_names={CLINIC_A: "Tuen Mun Clinic (as configured)"},
        clinic_names_zh={CLINIC_A: "屯門診所（設定）"},
        notify_group_name="Harbour Clinics",
        notify_group_name_zh="海港診所",
        **marked(request),
    )  # fmt: skip


@pytest.fixture
def history(
    console_services: Services, physician: Person, front_desk_b: Person, clock: MovableClock
) -> None:
    """Reads and a break of the glass, so every page has something about the patients."""
    svc = console_services
    svc.gate.read(front_desk_b.caller, RESOURCE_TYPES["Patient"], WONG.patient_id)
    svc.gate.break_glass(
        physician.caller,
        CHAN.patient_id,
        "emergency-treatment",
        "Seen in the waiting room",
        emergency=False,
    )
    svc.gate.read(physician.caller, RESOURCE_TYPES["Condition"], "cond-1")


def test_the_officer_sees_identity_and_contact_and_never_more(
    signed_in: Browser, officer: Person, history: None
) -> None:
    client = signed_in(officer)
    found = client.post(
        "/console/patients",
        data={
            "csrf": csrf_of(client.get("/console/patients").text),
            "identifier": CHAN.hkid.lower().replace("(", "").replace(")", ""),
            "purpose": "PATRQT",
        },
    )
    assert CHAN.english_name in found.text and CHAN.phone in found.text
    pages = [found.text] + [client.get(path).text for path in OFFICER_PAGES]
    for text in pages:
        for value in _never_shown(CHAN) + _never_shown(WONG):
            assert value not in text
    report = client.get(f"/console/patients/{CHAN.patient_id}").text
    assert CHAN.chinese_name in report and CHAN.mrn in report
    assert "Seen in the waiting room" in client.get("/console/break-glass").text


def test_a_clinic_manager_sees_no_patient_and_only_their_clinics(
    signed_in: Browser,
    console_services: Services,
    manager: Person,
    clock: MovableClock,
    history: None,
) -> None:
    same = add_person(console_services, clock, "desk9", Role.FRONT_DESK, [CLINIC_A])
    other = add_person(console_services, clock, "nurse9", Role.NURSE, [CLINIC_B])
    client = signed_in(manager)
    for path in MANAGER_PAGES:
        text = client.get(path).text
        for value in [CHAN.english_name, CHAN.chinese_name, CHAN.phone, CHAN.mrn]:
            assert value not in text, path
        for value in _never_shown(CHAN) + _never_shown(WONG):
            assert value not in text, path
        assert "Seen in the waiting room" not in text
    staff = client.get("/console/staff").text
    assert same.username in staff and other.username not in staff
    colleague = client.get(f"/console/staff/{same.username}").text
    assert "/suspend" not in colleague and "/authenticator" not in colleague
    assert client.get(f"/console/staff/{other.username}").status_code == 404
    assert "/console/dashboard/verify" not in client.get("/console/dashboard").text
    assert 'action="/console/containment/start"' not in client.get("/console/containment").text
    for path in OFFICER_ONLY:
        response = client.get(path)
        assert response.status_code == 403, path
        assert CHAN.english_name not in response.text


def test_containment_from_the_console_goes_through_the_containment_service(
    signed_in: Browser, console_services: Services, officer: Person
) -> None:
    client = signed_in(officer)
    token = csrf_of(client.get("/console/containment").text)
    form = {"csrf": token, "mode": "clinic-lock", "target": CLINIC_B, "reason": "breach at B"}
    stale = client.post("/console/containment/start", data={**form, "totp": officer.used_code()})
    assert stale.status_code == 403 and "not accepted" in stale.text
    assert not console_services.containment.refresh().active
    started = client.post(
        "/console/containment/start", data={**form, "totp": officer.code()}, follow_redirects=False
    )
    assert started.headers["location"].startswith("/console/containment?done=started-")
    assert console_services.containment.refresh().locked_clinics == {CLINIC_B}
    (item,) = console_services.containment.current().active
    released = client.post(
        f"/console/containment/{item.containment_id}/release",
        data={"csrf": token, "reason": "contained", "totp": officer.code()},
        follow_redirects=False,
    )
    assert released.status_code == 303 and not console_services.containment.refresh().active
    tags = [(e["tag"], e.get("source_address")) for e in ledger_events(console_services)]
    assert ("containment:mode:refused", "testclient") in tags
    assert ("containment:mode:started", "testclient") in tags
    assert ("containment:mode:released", "testclient") in tags


def test_suspending_and_reinstating_from_the_staff_page(
    signed_in: Browser, console_services: Services, officer: Person, physician: Person
) -> None:
    client = signed_in(officer)
    token = csrf_of(client.get("/console/staff").text)
    suspend = client.post(
        f"/console/staff/{physician.username}/suspend",
        data={"csrf": token, "reason": "snooping", "totp": officer.code()},
        follow_redirects=False,
    )
    assert suspend.headers["location"] == "/console/staff?done=suspended"
    account = console_services.accounts.find(physician.username)
    assert account is not None and account.suspended
    assert [i.target for i in console_services.containment.refresh().active] == ["doctor1"]
    reinstate = client.post(
        f"/console/staff/{physician.username}/reinstate",
        data={"csrf": token, "reason": "explained", "totp": officer.code()},
        follow_redirects=False,
    )
    assert reinstate.headers["location"] == "/console/staff?done=reinstated"
    account = console_services.accounts.find(physician.username)
    assert account is not None and not account.suspended
    assert not console_services.containment.refresh().active


def test_a_manager_ends_a_session_of_their_clinic_not_of_another(
    signed_in: Browser,
    console_services: Services,
    manager: Person,
    clock: MovableClock,
) -> None:
    # Staff of the manager's clinic below them, and of another clinic, signed in to apps.
    ours = add_person(console_services, clock, "desk7", Role.FRONT_DESK, [CLINIC_A])
    theirs = add_person(console_services, clock, "desk8", Role.FRONT_DESK, [CLINIC_B])
    for person in (ours, theirs):
        account = console_services.accounts.find(person.username)
        assert account is not None
        open_token(console_services, account, "user/*.cruds")
    client = signed_in(manager)
    token = csrf_of(client.get("/console/staff").text)
    (our_session,) = console_services.sessions.list_for(ours.account_id)
    (their_session,) = console_services.sessions.list_for(theirs.account_id)
    refused = client.post(f"/console/sessions/{their_session.session_id}/end", data={"csrf": token})
    assert refused.status_code == 403
    assert console_services.sessions.list_for(theirs.account_id) != []
    ended = client.post(
        f"/console/sessions/{our_session.session_id}/end",
        data={"csrf": token},
        headers={"HX-Request": "true"},
    )
    assert ended.status_code == 200 and ended.text.startswith("<tr>")
    assert console_services.sessions.list_for(ours.account_id) == []
    entry = [e for e in ledger_events(console_services) if e["tag"] == "admin:session:ended"][-1]
    assert entry["principal"] == "staff:manager1" and entry["reason"] == our_session.session_id


def test_a_new_authenticator_for_someone_else_is_shown_once_as_a_qr_code(
    signed_in: Browser, console_services: Services, officer: Person, manager: Person
) -> None:
    theirs = signed_in(manager)
    client = signed_in(officer)
    token = csrf_of(client.get("/console/staff").text)
    page = client.post(
        f"/console/staff/{manager.username}/authenticator",
        data={"csrf": token, "totp": officer.code()},
    )
    assert page.status_code == 200 and '<svg role="img"' in page.text and "<title>" in page.text
    assert theirs.get("/console/dashboard", follow_redirects=False).status_code == 303
    secret = re.search(r'<code class="secret">([A-Z2-7 ]+)</code>', page.text)
    assert secret is not None
    manager.secret, manager.last_step = secret.group(1).replace(" ", ""), None
    assert sign_in(theirs, manager).status_code == 303
    assert "admin:staff:totp-reset" in [e["tag"] for e in ledger_events(console_services)]


def test_moving_to_a_new_authenticator_needs_the_old_one_and_signs_out(
    signed_in: Browser, console_services: Services, officer: Person
) -> None:
    client = signed_in(officer)
    token = csrf_of(client.get("/console/account").text)
    wrong = client.post(
        "/console/account/authenticator", data={"csrf": token, "totp": officer.wrong_code()}
    )
    assert wrong.status_code == 403
    refused = [e for e in ledger_events(console_services) if e["tag"] == "console:step-up:refused"]
    assert refused[-1]["principal"] == "staff:officer1"
    page = client.post(
        "/console/account/authenticator", data={"csrf": token, "totp": officer.code()}
    )
    assert '<svg role="img"' in page.text and "Sign in again" in page.text
    assert client.get("/console/dashboard", follow_redirects=False).status_code == 303


def test_reviewing_a_grant_goes_through_the_review_service(
    signed_in: Browser, console_services: Services, officer: Person, history: None
) -> None:
    client = signed_in(officer)
    text = client.get("/console/break-glass").text
    (grant,) = console_services.break_glass.queue()
    assert "Emergency treatment" in text and f"/console/patients/{CHAN.patient_id}" in text
    response = client.post(
        f"/console/break-glass/{grant.grant_id}/review",
        data={"csrf": csrf_of(text), "outcome": "unjustified", "totp": officer.code()},
        headers={"HX-Request": "true"},
    )
    assert "Recorded: not justified." in response.text
    assert console_services.break_glass.get(grant.grant_id).review_outcome == "unjustified"
    entry = [
        e for e in ledger_events(console_services) if e["tag"] == "access:break-glass:reviewed"
    ]
    assert entry[-1]["principal"] == "staff:officer1"
    assert entry[-1]["reason"] == f"grant {grant.grant_id}: unjustified"


def test_the_clinicians_words_are_shown_only_once_the_ledger_names_who_saw_them(
    signed_in: Browser, console_services: Services, officer: Person, history: None
) -> None:
    """The queue unsealed each clinician's own words (they may carry clinical detail)
    with no entry naming the officer or the patient (adversary round 61, left open;
    closed after it): ``access:break-glass:shown`` names both, per grant shown."""
    (grant,) = console_services.break_glass.queue()
    before = len(ledger_events(console_services))
    text = signed_in(officer).get("/console/break-glass").text
    assert "Seen in the waiting room" in text
    shown = [
        e
        for e in ledger_events(console_services)[before:]
        if e["tag"] == "access:break-glass:shown"
    ]
    assert [(e["principal"], e["patient_pseudonym"]) for e in shown] == [
        ("staff:officer1", grant.patient_pseudonym)
    ]
    assert shown[0]["reason"].startswith(f"grant {grant.grant_id}:")
    assert "Seen in the waiting room" not in str(shown)


def test_the_report_lists_each_access_with_its_proof_and_its_pdf_letter(
    signed_in: Browser, console_services: Services, officer: Person, history: None
) -> None:
    client = signed_in(officer)
    page = client.get(f"/console/patients/{CHAN.patient_id}")
    assert "Physician" in page.text and "Broke the glass" in page.text
    report = client.get(f"/console/patients/{CHAN.patient_id}/report.json").json()
    assert report["patient"] == f"Patient/{CHAN.patient_id}"
    assert all(line["proof"] or report["tree_size"] == 1 for line in report["accesses"])
    assert [e for e in ledger_events(console_services) if e["tag"] == "audit:ledger:read"]
    for language, title, clinic, group in (
        ("en", "Who has opened your health record", "Tuen Mun Clinic (as configured)",
         "HarbourClinics·"),
        ("zh-Hant", "曾開啟閣下", "屯門診所（設定）", "海港診所·"),
    ):  # fmt: skip
        pdf = client.get(f"/console/patients/{CHAN.patient_id}/letter.pdf?lang={language}")
        assert pdf.headers["content-type"] == "application/pdf"
        words = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
        assert title in words.replace("\n", "")
        # The letter's names are the configured ones, never an Organization record's.
        flat = "".join(words.split())
        assert "".join(clinic.split()) in flat and flat.startswith(group)
        assert "FamilyClinic" not in flat
        assert CHAN.hkid not in words and CHAN.birth_date not in words
        assert CHAN.condition not in words
    missing = client.get("/console/patients/nobody")
    assert missing.status_code == 404


def test_the_language_is_kept_with_the_account(
    signed_in: Browser, browser: Browser, officer: Person, second_officer: Person
) -> None:
    client = signed_in(officer)
    token = csrf_of(client.get("/console/account").text)
    client.post(
        "/console/account/language",
        data={"csrf": token, "language": "zh-Hant", "back": "/console/dashboard"},
    )
    assert '<html lang="zh-Hant-HK">' in client.get("/console/dashboard").text
    again = browser()
    sign_in(again, officer)
    page = again.get("/console/staff").text
    assert '<html lang="zh-Hant-HK">' in page and "職員及登入" in page
    assert '<html lang="en">' in signed_in(second_officer).get("/console/dashboard").text


def test_a_verification_from_the_dashboard_is_recorded(
    signed_in: Browser, console_services: Services, officer: Person
) -> None:
    client = signed_in(officer)
    token = csrf_of(client.get("/console/dashboard").text)
    client.post("/console/dashboard/verify", data={"csrf": token})
    deadline = time.monotonic() + 20
    while len(console_services.verify_runs.latest_finished()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    runs = console_services.verify_runs.latest_finished()
    assert runs["audit"].ok and runs["audit"].started_by == "staff:officer1"
    assert "Passed" in client.get("/console/dashboard").text
    verified = [e for e in ledger_events(console_services) if e["tag"] == "audit:ledger:verified"]
    assert {e["detail"]["ledger"] for e in verified} == {"audit", "unwrap"}


def test_the_dashboard_says_whether_the_detectors_are_judging_the_ledger(
    signed_in: Browser, console_services: Services, officer: Person, clock: MovableClock
) -> None:
    """No process judging (a server started with the thread off and no carevault detect
    beside it), judging and up to date, and judging but a minute and more behind."""
    from carevault.db import write_transaction
    from carevault.detect.engine import CURSOR, wall_us
    from carevault.detect.state import write_cursor

    assert console_services.detection is not None
    engine = console_services.detection.engine
    client = signed_in(officer)

    def shown() -> str:
        found = re.search(
            r'<p id="detectors">(.*?)</p>', client.get("/console/dashboard").text, re.S
        )
        assert found is not None
        return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())

    assert "No process is judging the audit ledger now" in shown()
    engine.catch_up()
    judged = engine.progress().judged
    assert judged > 0
    assert f"Detectors are up to date: {judged:,} audit entries judged." in shown()
    # A process holds the lease but judges nothing: what waits is shown once the oldest
    # entry has waited more than a minute.
    signed_in(officer)  # a sign-in: an entry no one judges
    waiting = engine.progress()
    assert waiting.waiting > 0
    with write_transaction(console_services.engine) as connection:
        write_cursor(
            connection, CURSOR, waiting.judged, "stuck", wall_us() + 600_000_000, wall_us()
        )
    clock.advance(61)
    text = shown()
    assert (
        text.startswith("Detectors are behind:")
        and "Alerts and automatic responses come late" in text
    )
    later = engine.progress()
    assert later.judging and later.waiting > 0 and later.behind(console_services.now_us())
    assert f"{later.waiting:,} audit entries wait" in text


def test_containment_shows_on_the_dashboard_for_managers_too(
    signed_in: Browser, console_services: Services, officer: Person, manager: Person
) -> None:
    from carevault.containment.service import Officer

    console_services.contain.start(
        Officer(officer.username, officer.code()), Mode.PHI_OFFLINE, None, "suspected breach"
    )
    text = signed_in(manager).get("/console/dashboard").text
    assert "Patient data offline" in text and "suspected breach" in text


def test_emergency_access_needs_a_second_privacy_officer(
    signed_in: Browser,
    console_services: Services,
    officer: Person,
    second_officer: Person,
    physician: Person,
) -> None:
    from carevault.containment.service import Officer

    console_services.contain.start(
        Officer(officer.username, officer.code()), Mode.PHI_OFFLINE, None, "suspected breach"
    )
    grant = console_services.gate.break_glass(
        physician.caller,
        WONG.patient_id,
        "emergency-treatment",
        "Collapsed in the waiting room",
        emergency=True,
    )
    first = signed_in(officer)
    page = first.get("/console/containment").text
    assert f"/console/emergency/{grant.grant_id}/approve" in page
    same = first.post(
        f"/console/emergency/{grant.grant_id}/approve",
        data={"csrf": csrf_of(page), "totp": officer.code()},
        follow_redirects=False,
    )
    assert same.headers["location"] == "/console/containment?done=approval-second"
    assert not console_services.break_glass.get(grant.grant_id).approved
    second = signed_in(second_officer)
    approved = second.post(
        f"/console/emergency/{grant.grant_id}/approve",
        data={
            "csrf": csrf_of(second.get("/console/containment").text),
            "totp": second_officer.code(),
        },
        follow_redirects=False,
    )
    assert approved.headers["location"] == "/console/containment?done=approved"
    assert console_services.break_glass.get(grant.grant_id).approved
    assert "Emergency access approved." in second.get("/console/containment?done=approved").text


@pytest.mark.parametrize("code", ["", "wrong", "used"])
def test_a_grant_is_not_found_justified_without_a_fresh_code(
    signed_in: Browser, console_services: Services, officer: Person, history: None, code: str
) -> None:
    """A finding is final: the console cookie and its CSRF token alone record none."""
    client = signed_in(officer)  # signing in spent the officer's latest code
    text = client.get("/console/break-glass").text
    (grant,) = console_services.break_glass.queue()
    given = {"": "", "wrong": officer.wrong_code(), "used": officer.used_code()}[code]
    response = client.post(
        f"/console/break-glass/{grant.grant_id}/review",
        data={"csrf": csrf_of(text), "outcome": "justified", "totp": given},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/console/break-glass?done=refused"
    assert not console_services.break_glass.get(grant.grant_id).reviewed
    refused = [e for e in ledger_events(console_services) if e["tag"] == "console:step-up:refused"]
    assert refused[-1]["principal"] == "staff:officer1"
    assert "code was not accepted" in client.get("/console/break-glass?done=refused").text


#: CAREVAULT_ACCESS_REPORT_LIMIT for the test of the cut (10,000 took 36-79 s to write).
CUT = 50


@pytest.mark.settings(access_report_limit=CUT)
def test_a_report_cut_at_its_limit_keeps_the_newest_and_says_it_is_incomplete(
    signed_in: Browser, console_services: Services, officer: Person
) -> None:
    pseudonym = console_services.vault.locate("Patient", CHAN.patient_id).head.patient_pseudonym
    reads = [
        AuditEvent(
            tag=Tag.FHIR_SEARCH,
            outcome=Outcome.SUCCESS,
            at_us=console_services.now_us(),
            principal="staff:routine",
            role="front_desk",
            clinic_ids=(CLINIC_B,),
            resource_type="Patient",
            resource_id=CHAN.patient_id,
            patient_pseudonym=pseudonym,
            categories=("identity",),
            purpose="TREAT",
        )  # fmt: skip
        for _ in range(CUT)
    ]
    for start in range(0, CUT, 1000):
        console_services.audit.record(reads[start : start + 1000])
    client = signed_in(officer)
    page = client.get(f"/console/patients/{CHAN.patient_id}").text
    assert 'id="report-incomplete"' in page and "This report is incomplete" in page
    report = client.get(f"/console/patients/{CHAN.patient_id}/report.json").json()
    assert report["complete"] is False and report["left_out"] > 0
    (shown, total, left) = re.findall(
        r"lists the ([\d,]+) most recent of ([\d,]+) accesses; the ([\d,]+) older", page
    )[0]
    numbers = [int(text.replace(",", "")) for text in (shown, total, left)]
    assert numbers[0] == CUT and numbers[2] == numbers[1] - CUT > 0
