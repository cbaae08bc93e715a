"""Adversary round 78: what the console shows of a patient, and whether an incident on
the officer who saw it lists that patient.

The break-the-glass queue unseals each clinician's own words about the patient ("Seen
in the waiting room", as often "overdose, known HIV"); round 61 made it write
``access:break-glass:shown`` first, naming the officer and the patient. That entry named
no category, and its tag was neither a release the incident scope counts nor an access
the patient's report lists: an incident declared on an officer whose login was stolen
did not list the patients whose clinicians' words the thief read.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from carevault.bootstrap import Services
from carevault.clock import utc_now
from carevault.incidents import Actor, compute_scope, declare_case
from carevault.ledger.events import Tag
from tests.integration.web.console.conftest import Browser
from tests.support.console import CHAN, Person, ledger_events

pytestmark = pytest.mark.postgres


def _glass(svc: Services, physician: Person) -> None:
    svc.gate.break_glass(
        physician.caller,
        CHAN.patient_id,
        "emergency-treatment",
        "Overdose; known HIV, on antiretrovirals",
        emergency=False,
    )


def test_the_clinicians_words_shown_put_their_patient_in_the_officers_scope(
    signed_in: Browser, console_services: Services, officer: Person, physician: Person
) -> None:
    _glass(console_services, physician)
    since = utc_now() - timedelta(seconds=1)
    text = signed_in(officer).get("/console/break-glass").text
    assert "known HIV" in text
    case = {
        "title": "the officer's login was stolen",
        "accounts": [officer.username],
        "since": since.isoformat(),
    }
    incident = declare_case(console_services, Actor("staff:officer2"), case).incident_id
    run = compute_scope(console_services, incident, actor=Actor("staff:officer2"))
    assert run.document is not None
    confirmed = {line["patient"]: line for line in run.document["tiers"]["confirmed"]}
    assert CHAN.patient_id in confirmed
    # Free text a clinician wrote about the patient: read as the most sensitive data it
    # may hold (fail closed), as an unopened health record is.
    assert "sensitive_clinical" in confirmed[CHAN.patient_id]["categories"]


def test_the_clinicians_words_shown_are_in_the_patients_access_report(
    signed_in: Browser, console_services: Services, officer: Person, physician: Person
) -> None:
    _glass(console_services, physician)
    client = signed_in(officer)
    client.get("/console/break-glass")
    (shown,) = [
        e for e in ledger_events(console_services) if e["tag"] == Tag.ACCESS_BREAK_GLASS_SHOWN
    ]
    assert shown["categories"] == ["sensitive_clinical"]
    report = client.get(f"/console/patients/{CHAN.patient_id}/report.json?purpose=PATRQT")
    assert report.status_code == 200, report.text
    actions = [line["action"] for line in report.json()["accesses"]]
    assert Tag.ACCESS_BREAK_GLASS_SHOWN.value in actions


@pytest.mark.parametrize(
    "path",
    [
        "/console/break-glass",
        f"/console/patients/{CHAN.patient_id}?purpose=PATRQT",
        f"/console/patients/{CHAN.patient_id}/report.json?purpose=PATRQT",
        f"/console/patients/{CHAN.patient_id}/letter.pdf?purpose=PATRQT",
        "/console/alerts/1",
        "/console/alerts/1/evidence.json",
        "/console/incidents/1/scope",
        "/console/incidents/1/scope.json",
        "/console/incidents/1/notices",
    ],
)
def test_guard_a_clinic_manager_reaches_no_page_that_shows_a_patient(
    signed_in: Browser,
    console_services: Services,
    manager: Person,
    physician: Person,
    path: str,
) -> None:
    """Held: the console's one other role (a clinic manager, for containment) is refused
    every officer page, and nothing of the patient is unsealed or recorded as shown."""
    _glass(console_services, physician)
    before = len(ledger_events(console_services))
    response = signed_in(manager).get(path, follow_redirects=False)
    assert response.status_code == 403, (path, response.status_code)
    assert "known HIV" not in response.text
    tags = {e["tag"] for e in ledger_events(console_services)[before:]}
    assert not tags & {Tag.ACCESS_BREAK_GLASS_SHOWN.value, Tag.AUDIT_READ.value}
