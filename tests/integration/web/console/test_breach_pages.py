"""The breach pages of the console (alerts, incidents, scope, regulators) per role, each
action through the service its CLI command uses, and what the ledger records."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from markupsafe import escape

from carevault.bootstrap import Services
from carevault.config import Settings
from carevault.detect.budget import ReleaseRefused
from carevault.domain.roles import Role
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller
from carevault.incidents import incidents_for
from carevault.ledger.events import AuditEvent
from carevault.ledger.verifier import leaf_hash, verify_inclusion
from carevault.notify.store import NoticeStore
from carevault.vault.writer import Put
from tests.conftest import make_settings
from tests.integration.web.console.conftest import Browser
from tests.support.console import (
    CHAN,
    CLINIC_B,
    WONG,
    MovableClock,
    Person,
    add_person,
    csrf_of,
    ledger_events,
    sign_in,
)
from tests.support.notify import MailSink, smtp_server
from tests.support.staff import add_account

pytestmark = pytest.mark.postgres

#: Three more patients at clinic B, so that a front desk there can read past its budget.
EXTRA = [f"pt-b{n}" for n in range(3)]
EXTRA_NAMES = [f"Lam Extra{n}" for n in range(3)]


@pytest.fixture
def mail(tmp_path: Path) -> Iterator[tuple[Controller, MailSink]]:
    """A real SMTP server for the notices the officer starts."""
    controller, sink = smtp_server(tmp_path / "journal")
    try:
        yield controller, sink
    finally:
        controller.stop()


@pytest.fixture
def settings(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest,
    mail: tuple[Controller, MailSink],
) -> Settings:  # fmt: skip
    url = request.getfixturevalue("pg_schema") if backend == "postgres" else None
    # The officer contains by hand: the detectors only raise.
    return make_settings(
        tmp_path / "home",
        url,
        release_budget="front_desk=3/10",
        detect_responses="low=raise,medium=raise,high=raise,critical=raise",
        smtp_host="127.0.0.1",
        smtp_port=mail[0].port,
        notify_letters_dir=tmp_path / "letters",
    )


def _bulk_read(svc: Services, desk: Person) -> int:
    """The front desk reads every patient at clinic B until the budget refuses; the
    detectors catch up; the id of the alert raised."""
    svc.gate.write(
        Caller(principal="system:test"),
        [
            Put(
                RESOURCE_TYPES["Patient"],
                patient_id,
                {
                    "resourceType": "Patient",
                    "id": patient_id,
                    "name": [{"text": name}],
                    "managingOrganization": {"reference": f"Organization/{CLINIC_B}"},
                },
            )
            for patient_id, name in zip(EXTRA, EXTRA_NAMES, strict=True)
        ],
    )
    refused = 0
    for patient_id in [WONG.patient_id, *EXTRA]:
        try:
            svc.gate.read(desk.caller, RESOURCE_TYPES["Patient"], patient_id)
        except ReleaseRefused:  # the budget refuses the rest: what the test is after
            refused += 1
    assert refused >= 1
    assert svc.detection is not None
    svc.detection.engine.catch_up()
    found = [a for a in svc.detection.alerts.list() if a.account == desk.username]
    assert found, svc.detection.alerts.list()
    return found[0].alert_id


def _never_shown(text: str) -> None:
    for value in [
        CHAN.english_name, CHAN.hkid, CHAN.birth_date, CHAN.condition, CHAN.phone,
        WONG.english_name, WONG.hkid, WONG.birth_date, WONG.condition, WONG.phone,
        *EXTRA_NAMES,
    ]:  # fmt: skip
        assert value not in text


def test_an_unknown_alert_status_is_refused_not_shown_as_every_alert(
    signed_in: Browser, officer: Person
) -> None:
    client = signed_in(officer)
    refused = client.get("/console/alerts?status=bogus")
    assert refused.status_code == 400
    assert "open, acknowledged, dismissed" in refused.text
    for status in ("open", "acknowledged", "dismissed", "all"):
        assert client.get(f"/console/alerts?status={status}").status_code == 200


def test_the_officer_sees_the_case_its_explanation_and_checkable_evidence(
    signed_in: Browser, console_services: Services, officer: Person, front_desk_b: Person
) -> None:
    alert_id = _bulk_read(console_services, front_desk_b)
    client = signed_in(officer)
    listing = client.get("/console/alerts")
    assert listing.status_code == 200
    assert f"/console/alerts/{alert_id}" in listing.text and front_desk_b.username in listing.text
    shown = client.get(f"/console/alerts/{alert_id}")
    alert = console_services.detection.alerts.get(alert_id)  # type: ignore[union-attr]
    assert alert.explanation in shown.text.replace("&#39;", "'").replace("&quot;", '"')
    assert "Entry " in shown.text and "target=desk2" in shown.text
    for text in (listing.text, shown.text):
        _never_shown(text)
    evidence = client.get(f"/console/alerts/{alert_id}/evidence.json").json()
    assert evidence["entries"], evidence
    size = evidence["tree_size"]
    root = base64.b64decode(evidence["checkpoint"].splitlines()[2])
    for item in evidence["entries"]:
        data = base64.b64decode(item["entry"])
        assert json.loads(data)["principal"] == f"staff:{front_desk_b.username}"
        proof = [base64.b64decode(h) for h in item["proof"]]
        verify_inclusion(leaf_hash(data), item["seq"], size, proof, root)
    assert client.get("/console/alerts/99999").status_code == 404


def test_acknowledging_and_dismissing_need_a_fresh_code_and_a_reason(
    signed_in: Browser, console_services: Services, officer: Person, front_desk_b: Person
) -> None:
    alert_id = _bulk_read(console_services, front_desk_b)
    client = signed_in(officer)
    token = csrf_of(client.get(f"/console/alerts/{alert_id}").text)
    alerts = console_services.detection.alerts  # type: ignore[union-attr]
    stale = client.post(
        f"/console/alerts/{alert_id}/acknowledge",
        data={"csrf": token, "totp": officer.used_code()},
    )
    assert stale.status_code == 403 and alerts.get(alert_id).status == "open"
    done = client.post(
        f"/console/alerts/{alert_id}/acknowledge",
        data={"csrf": token, "totp": officer.code()},
        follow_redirects=False,
    )
    assert done.status_code == 303 and alerts.get(alert_id).status == "acknowledged"
    no_reason = client.post(
        f"/console/alerts/{alert_id}/dismiss", data={"csrf": token, "totp": officer.code()}
    )
    assert no_reason.status_code == 400 and alerts.get(alert_id).status == "acknowledged"
    client.post(
        f"/console/alerts/{alert_id}/dismiss",
        data={"csrf": token, "totp": officer.code(), "reason": "a planned audit of files"},
    )
    assert alerts.get(alert_id).status == "dismissed"
    events = ledger_events(console_services)
    handled = [e for e in events if e["tag"] == "detect:alert:handled"]
    assert [e["detail"]["status"] for e in handled] == ["acknowledged", "dismissed"]
    # The officer's words are sealed in the entry (they may name a patient: stop 55).
    assert handled[-1]["reason"] == "dismissed (the officer's reason sealed in the detail)"
    assert "planned audit" not in str(handled[-1]["detail"])
    dismissed = AuditEvent.from_canonical(json.dumps(handled[-1]).encode())
    assert console_services.detection.desk.reason_of(dismissed) == "a planned audit of files"
    assert all(e["principal"] == "staff:officer1" for e in handled)
    assert any(e["tag"] == "containment:mode:refused" for e in events)


def test_an_incident_declared_from_the_alert_has_its_scope_timeline_and_reports(
    signed_in: Browser, console_services: Services, officer: Person, front_desk_b: Person
) -> None:
    alert_id = _bulk_read(console_services, front_desk_b)
    client = signed_in(officer)
    shown = client.get(f"/console/alerts/{alert_id}").text
    token = csrf_of(shown)
    # The form starts the window a day before the alert: the reads that raised it count.
    since = re.findall(r'name="since" type="datetime-local" value="([^"]+)"', shown)[0]
    declared = client.post(
        f"/console/alerts/{alert_id}/declare",
        data={"csrf": token, "since": since},
        follow_redirects=False,
    )
    assert declared.status_code == 303
    incident_id = int(re.findall(r"/console/incidents/(\d+)", declared.headers["location"])[0])
    found = incidents_for(console_services).get(incident_id)
    assert found.alert_id == str(alert_id)
    assert found.compromised.accounts == (front_desk_b.username,)
    panel = client.get(f"/console/incidents/{incident_id}/notices", headers={"HX-Request": "true"})
    assert panel.status_code == 200, panel.text
    assert 'id="notice-progress"' in panel.text and "No notice has been sent" in panel.text
    page = client.get(f"/console/incidents/{incident_id}")
    assert page.status_code == 200 and "Declared" in page.text
    assert f'hx-get="/console/incidents/{incident_id}/notices"' not in page.text  # not running
    scope = client.get(f"/console/incidents/{incident_id}/scope")
    assert scope.status_code == 200
    # The desk was given WONG and two others before the budget refused the rest.
    assert WONG.patient_id in scope.text and "<svg" in scope.text
    assert "3 people had their data shown or decrypted" in scope.text
    _never_shown(scope.text)
    board = client.get(f"/console/incidents/{incident_id}/scope.html")
    assert board.headers["content-disposition"].startswith("attachment")
    amended = client.post(
        f"/console/incidents/{incident_id}/amend",
        data={"csrf": token, "status": "contained", "note": "account suspended", "title": ""},
        follow_redirects=False,
    )
    assert amended.status_code == 303
    assert incidents_for(console_services).get(incident_id).status.value == "contained"
    timeline = client.get(f"/console/incidents/{incident_id}").text
    assert "Amended" in timeline and "Scope run" in timeline
    report = client.get(f"/console/incidents/{incident_id}/reports/gdpr.json")
    assert report.status_code == 200 and report.json()["deadline"]
    clocks = {c["regulator"]: c for c in NoticeStore(console_services.engine).clocks()}
    assert set(clocks) == {"pcpd", "hipaa", "gdpr"}
    assert "h left" in client.get("/console/dashboard").text
    refused = client.post(
        f"/console/incidents/{incident_id}/decide",
        data={"csrf": token, "regulator": "gdpr", "decision": "not-notify",
              "reason": "no EU residents among them", "totp": officer.used_code()},
    )  # fmt: skip
    assert refused.status_code == 403
    client.post(
        f"/console/incidents/{incident_id}/decide",
        data={"csrf": token, "regulator": "gdpr", "decision": "not-notify",
              "reason": "no EU residents among them", "totp": officer.code()},
    )  # fmt: skip
    closed = {c["regulator"]: c for c in NoticeStore(console_services.engine).clocks()}
    assert closed["gdpr"]["decision"] == "not-notify" and closed["pcpd"]["decision"] is None
    tags = [(e["tag"], e.get("principal")) for e in ledger_events(console_services)]
    assert ("incident:incident:declared", "staff:officer1") in tags
    assert ("incident:incident:amended", "staff:officer1") in tags
    assert ("incident:scope:computed", "staff:officer1") in tags
    decided = [e for e in ledger_events(console_services) if e["tag"] == "notify:risk:decided"]
    assert [e["outcome"] for e in decided] == ["denied", "success"]


def test_declaring_by_hand_checks_every_field_and_changes_nothing_when_wrong(
    signed_in: Browser,
    console_services: Services,
    officer: Person,
    physician: Person,
    front_desk_b: Person,
) -> None:
    client = signed_in(officer)
    token = csrf_of(client.get("/console/incidents").text)
    form = {"csrf": token, "title": "Laptop stolen", "since": "2026-11-30T09:00"}
    empty = client.post("/console/incidents", data=form)
    assert empty.status_code == 400 and not incidents_for(console_services).all()
    wrong = client.post("/console/incidents", data={**form, "addresses": "not-an-address"})
    assert wrong.status_code == 400 and "not an address" in wrong.text
    # A typo in a username would give an empty scope, read as "no patient affected".
    typo = client.post("/console/incidents", data={**form, "accounts": "desk2, doctr1<b>"})
    assert typo.status_code == 400 and "no staff account &#39;doctr1&lt;b&gt;&#39;" in typo.text
    # So would a typo in a client app's id or a clinic's (the form names no session).
    for field, wrong in (("clients", "lab<b>"), ("clinics", "clinic-tuen-mum")):
        typo = client.post("/console/incidents", data={**form, "accounts": "desk2", field: wrong})
        assert typo.status_code == 400, (field, typo.status_code)
        assert f"{field}: no " in typo.text and str(escape(repr(wrong))) in typo.text
    assert not incidents_for(console_services).all()
    done = client.post(
        "/console/incidents",
        data={**form, "accounts": "desk2, doctor1", "database": "on"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    (found,) = incidents_for(console_services).all()
    assert found.compromised.accounts == ("desk2", "doctor1") and found.compromised.database
    # 09:00 in Hong Kong is 01:00 UTC.
    assert found.as_json()["since"].startswith("2026-11-30T01:00")


BREACH_PAGES = ["/console/alerts", "/console/alerts/1", "/console/incidents",
                "/console/incidents/1", "/console/incidents/1/scope"]  # fmt: skip
BREACH_ACTIONS = [
    ("/console/alerts/1/acknowledge", {"totp": "123456"}),
    ("/console/alerts/1/dismiss", {"totp": "123456", "reason": "x"}),
    ("/console/alerts/1/declare", {}),
    ("/console/incidents", {"title": "x", "since": "2026-01-01T00:00", "accounts": "a"}),
    ("/console/incidents/1/amend", {"status": "closed"}),
    ("/console/incidents/1/scope", {}),
    ("/console/incidents/1/notices", {}),
    ("/console/incidents/1/decide", {"regulator": "pcpd", "decision": "filed"}),
]


def test_other_roles_and_strangers_get_nothing(
    browser: Browser,
    signed_in: Browser,
    console_services: Services,
    officer: Person,
    manager: Person,
    physician: Person,
    front_desk_b: Person,
) -> None:
    _bulk_read(console_services, front_desk_b)
    officer_client = signed_in(officer)
    token = csrf_of(officer_client.get("/console/incidents").text)
    officer_client.post(
        "/console/incidents",
        data={"csrf": token, "title": "t", "since": "2026-11-01T00:00", "accounts": "desk2"},
    )
    before = len(ledger_events(console_services))
    manager_client = signed_in(manager)
    manager_token = csrf_of(manager_client.get("/console/dashboard").text)
    dashboard = manager_client.get("/console/dashboard").text
    assert "/console/alerts" not in dashboard and "/console/incidents/" not in dashboard
    for path in BREACH_PAGES:
        assert manager_client.get(path).status_code == 403, path
    stranger = browser()
    for path in BREACH_PAGES:
        answer = stranger.get(path, follow_redirects=False)
        assert answer.status_code == 303 and "/console/sign-in" in answer.headers["location"]
    for path, form in BREACH_ACTIONS:
        # The manager's own token, on the officer's session: refused before anything.
        answer = officer_client.post(path, data={**form, "csrf": manager_token})
        assert answer.status_code == 403, path
        assert stranger.post(path, data=form, follow_redirects=False).status_code == 303
    refusals = ledger_events(console_services)[before:]
    acted = [e for e in refusals if e["tag"].split(":")[0] in ("incident", "detect", "notify")]
    assert acted == []
    refused = [e for e in refusals if e["tag"] == "console:request:refused"]
    assert len(refused) == len(BREACH_ACTIONS)
    assert len(incidents_for(console_services).all()) == 1
    # A physician has no console at all: the sign-in itself refuses them.
    physician_client = browser()
    assert sign_in(physician_client, physician).status_code != 303
    for path in BREACH_PAGES:
        assert physician_client.get(path, follow_redirects=False).status_code == 303, path


def test_starting_the_notices_needs_a_fresh_code_and_names_the_officer(
    signed_in: Browser, console_services: Services, officer: Person, front_desk_b: Person
) -> None:
    _bulk_read(console_services, front_desk_b)
    client = signed_in(officer)
    token = csrf_of(client.get("/console/incidents").text)
    declared = client.post(
        "/console/incidents",
        data={"csrf": token, "title": "desk", "since": "2026-01-01T00:00",
              "accounts": front_desk_b.username},
        follow_redirects=False,
    )  # fmt: skip
    incident_id = int(re.findall(r"/console/incidents/(\d+)", declared.headers["location"])[0])
    page = client.get(f"/console/incidents/{incident_id}").text
    assert 'id="notices-totp"' in page
    jobs = client.app.state  # type: ignore[attr-defined]
    for code in ("", officer.wrong_code(), officer.used_code()):
        refused = client.post(
            f"/console/incidents/{incident_id}/notices", data={"csrf": token, "totp": code},
            follow_redirects=False,
        )  # fmt: skip
        assert refused.status_code == 403 and "code was not accepted" in refused.text
        assert NoticeStore(console_services.engine).job(str(incident_id)) is None
        assert not getattr(jobs, "console_notice_jobs", {})
    started = client.post(
        f"/console/incidents/{incident_id}/notices",
        data={"csrf": token, "totp": officer.code()},
        follow_redirects=False,
    )
    assert started.status_code == 303
    jobs.console_notice_jobs[str(incident_id)].thread.join(60)
    assert NoticeStore(console_services.engine).job(str(incident_id)) is not None
    entries = [e for e in ledger_events(console_services) if e["tag"] == "notify:job:started"]
    assert [(e["outcome"], e["principal"]) for e in entries] == [
        ("denied", "staff:officer1"),
        ("denied", "staff:officer1"),
        ("denied", "staff:officer1"),
        ("success", "staff:officer1"),
    ]
    assert entries[-1]["detail"]["incident"] == str(incident_id)
    assert entries[-1]["role"] == "privacy_officer"


def _declare(client: Browser, token: str) -> int:
    declared = client.post(
        "/console/incidents",
        data={"csrf": token, "title": "desk misuse", "since": "2026-01-01T00:00",
              "until": "2026-12-31T00:00", "accounts": "desk2"},
        follow_redirects=False,
    )  # fmt: skip
    assert declared.status_code == 303, declared.text
    return int(re.findall(r"/console/incidents/(\d+)", declared.headers["location"])[0])


@pytest.mark.parametrize(
    "change",
    [
        {"since": "2026-11-30T03:00"},
        {"until": "2026-11-30T03:01"},
        {"status": "closed"},
    ],
)
def test_an_incident_is_not_narrowed_or_closed_without_a_fresh_code(
    signed_in: Browser,
    console_services: Services,
    officer: Person,
    front_desk_b: Person,
    change: dict[str, str],
) -> None:
    """The window decides the scope and the scope who gets a notice: narrowing it or
    closing the incident takes the officer's fresh code, as starting the notices does."""
    client = signed_in(officer)
    token = csrf_of(client.get("/console/incidents").text)
    incident_id = _declare(client, token)
    before = incidents_for(console_services).get(incident_id)
    form = {"csrf": token, "title": "", **change}
    refused = client.post(f"/console/incidents/{incident_id}/amend", data=form)
    assert refused.status_code == 403 and "code was not accepted" in refused.text
    assert incidents_for(console_services).get(incident_id) == before
    tags = [e["tag"] for e in ledger_events(console_services)]
    assert tags[-2:] == ["console:step-up:refused", "incident:incident:refused"]
    amended = client.post(
        f"/console/incidents/{incident_id}/amend",
        data={**form, "totp": officer.code()},
        follow_redirects=False,
    )
    assert amended.status_code == 303
    assert incidents_for(console_services).get(incident_id) != before


def test_an_incident_is_widened_without_a_code(
    signed_in: Browser, console_services: Services, officer: Person, front_desk_b: Person
) -> None:
    add_account(console_services, "desk3")
    client = signed_in(officer)
    token = csrf_of(client.get("/console/incidents").text)
    incident_id = _declare(client, token)
    amended = client.post(
        f"/console/incidents/{incident_id}/amend",
        data={"csrf": token, "title": "", "since": "2025-12-01T00:00",
              "until": "2027-01-01T00:00", "accounts": "desk3", "status": "contained"},
        follow_redirects=False,
    )  # fmt: skip
    assert amended.status_code == 303, amended.text
    after = incidents_for(console_services).get(incident_id)
    assert "desk3" in after.compromised.accounts and after.status.value == "contained"


def test_a_clinic_manager_with_a_good_csrf_token_of_their_own_changes_no_incident(
    signed_in: Browser,
    browser: Browser,
    console_services: Services,
    officer: Person,
    manager: Person,
    front_desk_b: Person,
    clock: MovableClock,
) -> None:
    """The role is checked, not only the token: a manager's own session and CSRF token do
    not declare, widen, narrow or close an incident, even with a good code of their own;
    a nurse has no console to sign in to."""
    officer_client = signed_in(officer)
    incident_id = _declare(officer_client, csrf_of(officer_client.get("/console/incidents").text))
    before = incidents_for(console_services).get(incident_id)
    client = signed_in(manager)
    token = csrf_of(client.get("/console/dashboard").text)
    for path, form in [
        ("/console/incidents", {"title": "x", "since": "2026-01-01T00:00", "accounts": "desk2"}),
        (f"/console/incidents/{incident_id}/amend", {"since": "2025-01-01T00:00"}),
        (f"/console/incidents/{incident_id}/amend", {"clients": "lab"}),
        (f"/console/incidents/{incident_id}/amend", {"until": "2026-06-01T00:00"}),
        (f"/console/incidents/{incident_id}/amend", {"status": "closed"}),
    ]:
        answer = client.post(path, data={**form, "csrf": token, "totp": manager.code()})
        assert answer.status_code == 403, (path, answer.status_code)
    assert incidents_for(console_services).all() == [before]
    nurse = add_person(console_services, clock, "nurse1", Role.NURSE, [CLINIC_B])
    assert sign_in(browser(), nurse).status_code != 303
