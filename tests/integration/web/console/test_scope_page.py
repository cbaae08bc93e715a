"""The scope page shows the latest kept run at once (computing one only on the first
visit), says what the ledger and the incident saw since, and recomputes on a POST with
the session's CSRF token, through the service the CLI and the API use."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.clock import utc_now
from carevault.config import Settings
from carevault.fhir.normalise import HKID_SYSTEM
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller
from carevault.gate.registration import PresenceProof, register
from carevault.incidents import Actor, case_from_alert, declare_case, incidents_for, kept_scope
from carevault.incidents.model import Amendment, Compromised
from carevault.vault.writer import Put
from tests.conftest import make_settings
from tests.integration.web.console.conftest import Browser
from tests.integration.web.console.test_breach_pages import EXTRA, _bulk_read, _never_shown
from tests.support.console import CLINIC_A, CLINIC_B, Person, csrf_of, ledger_events

pytestmark = pytest.mark.postgres

SCOPED = "incident:scope:computed"


@pytest.fixture
def settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    url = request.getfixturevalue("pg_schema") if backend == "postgres" else None
    return make_settings(
        tmp_path / "home",
        url,
        release_budget="front_desk=3/10",
        detect_responses="low=raise,medium=raise,high=raise,critical=raise",
    )


def _declared(svc: Services, desk: Person) -> int:
    """The front desk's bulk read, its alert, and an incident declared from it."""
    alert_id = _bulk_read(svc, desk)
    case = case_from_alert(svc, str(alert_id))
    # As the console's form does: the window opens a day before, so the reads count.
    case["since"] = (utc_now() - timedelta(days=1)).isoformat()
    case.pop("until", None)
    return declare_case(svc, Actor("staff:officer1"), case, str(alert_id)).incident_id


def _scoped(svc: Services) -> list[dict[str, Any]]:
    return [event for event in ledger_events(svc) if event["tag"] == SCOPED]


def test_the_page_shows_the_kept_run_and_computes_only_on_the_first_visit(
    signed_in: Browser,
    console_services: Services,
    officer: Person,
    front_desk_b: Person,
    physician: Person,
) -> None:
    incident = _declared(console_services, front_desk_b)
    client = signed_in(officer)
    first = client.get(f"/console/incidents/{incident}/scope")
    assert first.status_code == 200, first.text
    (recorded,) = _scoped(console_services)
    assert recorded["principal"] == "staff:officer1"
    run = kept_scope(console_services, incident)
    assert run.number == 1 and run.sha256 is not None and run.sha256 in first.text
    assert "Run 1" in first.text and "3 people had their data shown or decrypted" in first.text
    # Visits after the first show the kept run: nothing is computed, nothing written.
    head = console_services.audit_ledger.store.head()[0]
    again = client.get(f"/console/incidents/{incident}/scope")
    assert again.status_code == 200 and "Run 1" in again.text
    assert console_services.audit_ledger.store.head()[0] == head
    assert "No audit entry was appended after this run." in again.text
    assert 'id="amended-since"' not in again.text
    # The incident is amended (an entry in the ledger after the run): the page says both.
    incidents_for(console_services).amend(
        Actor("staff:officer1"),
        incident,
        Amendment(adds=Compromised(accounts=("doctor1",)), note="a second account"),
    )
    later = client.get(f"/console/incidents/{incident}/scope").text
    newer = console_services.audit_ledger.store.head()[0] - (run.ledger_seq or 0) - 1
    assert newer > 0
    assert f"{newer:,} audit entries were appended after this run." in later
    assert 'id="amended-since"' in later
    for text in (first.text, again.text, later):
        _never_shown(text)


def test_recompute_keeps_a_new_run_recorded_as_the_cli_records_it(
    signed_in: Browser, console_services: Services, officer: Person, front_desk_b: Person
) -> None:
    incident = _declared(console_services, front_desk_b)
    client = signed_in(officer)
    shown = client.get(f"/console/incidents/{incident}/scope").text
    done = client.post(
        f"/console/incidents/{incident}/scope",
        data={"csrf": csrf_of(shown)},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/console/incidents/{incident}/scope?done=recomputed"
    page = client.get(done.headers["location"]).text
    assert "Recomputed: this is run 2." in page
    _never_shown(page)
    scoped = _scoped(console_services)
    assert [(e["principal"], e["detail"]["run"]) for e in scoped] == [
        ("staff:officer1", 1),
        ("staff:officer1", 2),
    ]
    latest = kept_scope(console_services, incident)
    assert scoped[-1]["detail"]["sha256"] == latest.sha256
    timeline = [item["kind"] for item in incidents_for(console_services).timeline(incident)]
    assert timeline.count("scoped") == 2
    # The downloads are the kept runs themselves: the latest, or one by its number.
    download = client.get(f"/console/incidents/{incident}/scope.json")
    assert download.json() == latest.document
    assert 'filename="incident-1-scope-run-2.json"' in download.headers["content-disposition"]
    earlier = client.get(f"/console/incidents/{incident}/scope.json?run=1").json()
    assert earlier == kept_scope(console_services, incident, 1).document
    old = client.get(f"/console/incidents/{incident}/scope?run=1").text
    assert "This is an earlier run; the latest is run 2." in old
    assert client.get(f"/console/incidents/{incident}/scope?run=7").status_code == 404
    assert len(_scoped(console_services)) == 2


def test_a_recompute_without_the_session_or_its_token_is_refused(
    browser: Browser,
    signed_in: Browser,
    console_services: Services,
    officer: Person,
    manager: Person,
    front_desk_b: Person,
) -> None:
    incident = _declared(console_services, front_desk_b)
    client = signed_in(officer)
    assert client.get(f"/console/incidents/{incident}/scope").status_code == 200
    path = f"/console/incidents/{incident}/scope"
    manager_client = signed_in(manager)
    manager_token = csrf_of(manager_client.get("/console/dashboard").text)
    before = len(ledger_events(console_services))
    assert client.post(path, data={}).status_code == 403
    assert client.post(path, data={"csrf": "not-a-token"}).status_code == 403
    assert client.post(path, data={"csrf": manager_token}).status_code == 403
    refused = manager_client.post(path, data={"csrf": manager_token})
    assert refused.status_code == 403
    _never_shown(refused.text)
    assert manager_client.get(path).status_code == 403
    stranger = browser()
    answer = stranger.post(path, data={}, follow_redirects=False)
    assert answer.status_code == 303 and "/console/sign-in" in answer.headers["location"]
    assert stranger.get(path, follow_redirects=False).status_code == 303
    written = ledger_events(console_services)[before:]
    assert [e for e in written if e["tag"] == SCOPED] == []
    assert [run.number for run in incidents_for(console_services).scope_runs(incident)] == [1]
    assert sum(e["tag"] == "console:request:refused" for e in written) == 3


def test_the_runs_table_lists_every_kept_run_with_its_digest(
    signed_in: Browser, console_services: Services, officer: Person, front_desk_b: Person
) -> None:
    incident = _declared(console_services, front_desk_b)
    client = signed_in(officer)
    token = csrf_of(client.get(f"/console/incidents/{incident}/scope").text)
    for _ in range(2):
        client.post(f"/console/incidents/{incident}/scope", data={"csrf": token})
    page = client.get(f"/console/incidents/{incident}/scope").text
    runs = incidents_for(console_services).scope_runs(incident)
    assert [run.number for run in runs] == [3, 2, 1]
    for run in runs:
        assert f"scope.json?run={run.number}" in page
        assert (run.sha256 or "")[:16] in page
    listed = re.findall(r"scope\?run=(\d+)", page)
    assert listed == ["3", "2", "1"]
    assert json.loads(client.get(f"/console/incidents/{incident}/scope.json?run=2").text)


def test_records_the_compromised_account_changed_are_listed_apart(
    signed_in: Browser, console_services: Services, officer: Person, front_desk_b: Person
) -> None:
    """The desk's login also rewrote a patient's record: the scope lists it as changed,
    on the page, in the CSV and in the JSON, apart from the tiers (nobody is told for
    that alone; it is what to check against a backup)."""
    incident = _declared(console_services, front_desk_b)
    rewritten = {
        "resourceType": "Patient",
        "id": EXTRA[0],
        "name": [{"text": "Lam Rewritten"}],
        "managingOrganization": {"reference": f"Organization/{CLINIC_B}"},
    }
    console_services.gate.write(
        front_desk_b.caller, [Put(RESOURCE_TYPES["Patient"], EXTRA[0], rewritten)]
    )
    client = signed_in(officer)

    page = client.get(f"/console/incidents/{incident}/scope").text
    csv_text = client.get(f"/console/incidents/{incident}/scope.csv?run=1").text
    document = client.get(f"/console/incidents/{incident}/scope.json?run=1").json()

    assert 'id="changed"' in page and "1 people&#39;s records were written" in page
    assert f"<td>Changed</td><td>{EXTRA[0]}</td>" in page
    assert (
        [line for line in csv_text.splitlines() if line.startswith("changed,")]
        == [line for line in csv_text.splitlines() if line.startswith(f"changed,{EXTRA[0]},")]
        != []
    )
    assert [line["patient"] for line in document["changed"]] == [EXTRA[0]]
    assert document["counts"]["changed"] == 1
    _never_shown(page)


def test_patients_the_compromised_account_registered_are_listed_apart(
    signed_in: Browser, console_services: Services, officer: Person, front_desk_b: Person
) -> None:
    """The desk's login also registered at its clinic a patient of clinic A whose HKID and
    birth date it knew: the page, the CSV and the JSON list them as registered, apart from
    the tiers (the clinic reaches their records until the officer reviews it)."""
    incident = _declared(console_services, front_desk_b)
    system = Caller(principal="system:test")
    known = {
        "resourceType": "Patient",
        "id": "pt-known",
        "birthDate": "1970-03-14",
        "identifier": [{"system": HKID_SYSTEM, "value": "A123456(3)"}],
        "managingOrganization": {"reference": f"Organization/{CLINIC_A}"},
    }
    seen = {
        "resourceType": "Observation",
        "id": "ob-known",
        "status": "final",
        "code": {"text": "Blood pressure"},
        "subject": {"reference": "Patient/pt-known"},
    }
    console_services.gate.write(
        system,
        [
            Put(RESOURCE_TYPES["Patient"], "pt-known", known),
            Put(RESOURCE_TYPES["Observation"], "ob-known", seen),
        ],
    )
    proof = PresenceProof(HKID_SYSTEM, "A123456(3)", "1970-03-14")
    register(console_services.gate, front_desk_b.caller, proof, CLINIC_B)
    client = signed_in(officer)

    page = client.get(f"/console/incidents/{incident}/scope").text
    csv_text = client.get(f"/console/incidents/{incident}/scope.csv?run=1").text
    document = client.get(f"/console/incidents/{incident}/scope.json?run=1").json()

    assert 'id="registered"' in page and "1 people were registered at a clinic" in page
    assert "<td>Registered</td><td>pt-known</td>" in page
    # The row says where it was registered, not only where the records are held.
    assert f"registered at {CLINIC_B}" in page
    assert [
        line.split(",")[1] for line in csv_text.splitlines() if line.startswith("registered,")
    ] == ["pt-known"]
    assert [line["patient"] for line in document["registered"]] == ["pt-known"]
    assert document["registered"][0]["registered_at"] == [CLINIC_B]
    assert document["counts"]["registered"] == 1
    _never_shown(page)
