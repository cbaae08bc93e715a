"""Adversary round 58 (officers): an incident that names an officer's session.

An incident names what is believed compromised: accounts, and also sessions (a stolen
token, a hijacked console cookie). Round 41 refused narrowing or closing an incident,
or deciding not to notify a regulator, to an officer the incident names; round 56
extended it to every login of their person. Both judged only the incident's accounts:
an incident naming the officer's own session (their console session was seen reading
patients from an address abroad) was closed by that officer with their own fresh code,
and their "not-notify" decision stopped the regulator's clock.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from carevault.bootstrap import Services
from carevault.cli import app
from carevault.db import write_transaction
from carevault.detect.model import Access, Finding, Severity
from carevault.domain.roles import Role
from carevault.incidents import (
    Actor,
    IncidentError,
    case_from_alert,
    declare_case,
    incidents_for,
)
from carevault.incidents.model import Amendment, Status
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.notify.actions import named_accounts
from tests.support.cli_home import cli_services
from tests.support.console import ledger_events
from tests.support.ledgers import JAN_1, record_reads
from tests.support.staff import PASSWORD, open_token

pytestmark = pytest.mark.postgres

runner = CliRunner()
WINDOW = {"since": "2026-01-01", "until": "2026-01-02T00:00:00+00:00"}


def _staff(services: Services, username: str, role: Role, practitioner: str | None) -> str:
    services.accounts.add(username, username, role, ["clinic-tm"], PASSWORD, practitioner)
    return f"staff:{username}"


def _session_of(services: Services, username: str) -> str:
    account = services.accounts.find(username)
    assert account is not None
    open_token(services, account, "user/*.cruds")
    (session,) = services.sessions.list_for(account.account_id)
    return session.session_id


def test_an_officer_whose_session_is_named_does_not_close_or_narrow_the_incident(
    services: Services,
) -> None:
    """Hole (round 58): the incident names the officer's session, not their account;
    they closed it (and moved its window off their reads) with their own code."""
    own = _staff(services, "kwokoff", Role.PRIVACY_OFFICER, None)
    other = _staff(services, "leeoff", Role.PRIVACY_OFFICER, "dr-lee")
    session = _session_of(services, "kwokoff")
    incident = declare_case(
        services, Actor(other), {"title": "stolen cookie", "sessions": [session], **WINDOW}
    ).incident_id
    incidents = incidents_for(services)
    before = incidents.get(incident)

    for amendment in (
        Amendment(status=Status.CLOSED),
        Amendment(since_us=before.since_us + 3_600_000_000),
    ):
        with pytest.raises(IncidentError, match="another privacy officer"):
            incidents.amend(Actor(own), incident, amendment, step_up=lambda action: own)
        assert incidents.get(incident) == before
    refused = [e for e in ledger_events(services) if e["tag"] == Tag.INCIDENT_AMEND_REFUSED]
    assert refused and refused[-1]["principal"] == own
    assert refused[-1]["outcome"] == Outcome.DENIED
    # A regulator's decision reads the same names: the officer does not decide on it.
    assert own in named_accounts(services, str(incident))
    assert other not in named_accounts(services, str(incident))
    # Another officer still closes it.
    closed = incidents.amend(
        Actor(other), incident, Amendment(status=Status.CLOSED), step_up=lambda action: other
    )
    assert closed.status is Status.CLOSED


def test_a_named_session_holds_every_login_of_its_officers_person(services: Services) -> None:
    """The session of Dr Wong's physician login is named: Dr Wong's officer login is
    the person the incident is about, as for an account named (round 56)."""
    _staff(services, "wongdoc", Role.PHYSICIAN, "dr-wong")
    own = _staff(services, "wongoff", Role.PRIVACY_OFFICER, "dr-wong")
    other = _staff(services, "leeoff", Role.PRIVACY_OFFICER, "dr-lee")
    session = _session_of(services, "wongdoc")
    incident = declare_case(
        services, Actor(other), {"title": "stolen token", "sessions": [session], **WINDOW}
    ).incident_id
    incidents = incidents_for(services)

    with pytest.raises(IncidentError, match="another privacy officer"):
        incidents.amend(
            Actor(own), incident, Amendment(status=Status.CLOSED), step_up=lambda action: own
        )
    assert own in named_accounts(services, str(incident))
    assert incidents.get(incident).status is Status.OPEN


# --- a doctored scope document (``--scope``) for an incident CareVault holds ---------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data directory where staff:thief read three patients on 2026-01-01, and an
    incident about it whose scope was computed and kept."""
    services = cli_services(tmp_path, monkeypatch)
    home = services.settings.home
    try:
        services.accounts.add("thief", "Thief", Role.FRONT_DESK, ["tm"], PASSWORD)
        record_reads(services, "staff:thief", range(3), source_address="203.0.113.9")
    finally:
        services.close()
    return home


def _cli(home: Path, *args: str) -> Result:
    return runner.invoke(app, [*args, "--home", str(home)])


def test_a_doctored_scope_does_not_make_a_regulators_report_or_notices_of_our_incident(
    home: Path, tmp_path: Path
) -> None:
    """Hole (round 58): ``--scope FILE`` is for an incident scoped elsewhere
    (``INC-2026-001``); given with one of CareVault's own incidents it was believed as
    written, so the officer on the host left out the patients they read (or any) from
    the PCPD report's count and from the notices, with nothing on record to show it.
    Now the file must be the incident's latest kept run, as computed (its digest)."""
    declared = _cli(home, "incident", "declare", "--title", "Phished", "--account", "thief",
                    "--since", "2026-01-01", "--until", "2026-01-02T00:00:00+00:00")  # fmt: skip
    assert declared.exit_code == 0, declared.output
    incident = declared.output.split()[-1]
    scoped = _cli(home, "incident", "scope", incident, "--format", "json")
    assert scoped.exit_code == 0, scoped.output
    document = json.loads(scoped.stdout)
    assert len(document["tiers"]["confirmed"]) == 3
    kept = tmp_path / "kept.json"
    kept.write_text(json.dumps(document), encoding="utf-8")
    doctored = json.loads(json.dumps(document))
    doctored["tiers"]["confirmed"] = doctored["tiers"]["confirmed"][1:]
    forged = tmp_path / "doctored.json"
    forged.write_text(json.dumps(doctored), encoding="utf-8")

    for command in (("report", "pcpd"), ("notify", "preview")):
        refused = _cli(home, *command, incident, "--scope", str(forged))
        assert refused.exit_code == 1, refused.output
        assert "latest kept run" in refused.output
        assert '"regulator"' not in refused.output
    # The latest kept run, saved as the CLI printed it, is still taken; once a colleague
    # widens the window and a new run is kept, the earlier one no longer is.
    made = _cli(home, "report", "pcpd", incident, "--scope", str(kept))
    assert made.exit_code == 0, made.output
    widened = _cli(home, "incident", "amend", incident, "--since", "2025-12-01")
    assert widened.exit_code == 0, widened.output
    assert _cli(home, "incident", "scope", incident, "--format", "json").exit_code == 0
    stale = _cli(home, "report", "pcpd", incident, "--scope", str(kept))
    assert stale.exit_code == 1 and "latest kept run" in stale.output


# --- declaring from an alert a window that leaves out its evidence -------------------------


def _officer_read_and_alerted(services: Services) -> str:
    """staff:mallory (an officer) opened three patients' access reports on 1 January;
    the detectors raised ``breadth`` about it. The alert's id."""
    record_reads(services, "staff:mallory", range(3), role="privacy_officer")
    positions = []
    seq = 0
    while (data := services.audit_ledger.store.entry(seq)) is not None:
        if AuditEvent.from_canonical(data, seq=seq).principal == "staff:mallory":
            positions.append(seq)
        seq += 1
    access = Access(
        position=positions[-1],
        at_us=JAN_1 + 2 * 60_000_000,
        tag=str(Tag.FHIR_READ),
        outcome="success",
        principal="staff:mallory",
        role="privacy_officer",
    )
    finding = Finding(
        "breadth", Severity.HIGH, "day-1", "3 distinct patients", access,
        ("ps0", "ps1", "ps2"), first_position=positions[0],
    )  # fmt: skip
    detection = services.detection
    assert detection is not None
    with write_transaction(services.engine) as connection:
        detection.alerts.upsert(connection, [finding], JAN_1 + 3_600_000_000)
    (alert,) = detection.alerts.list()
    return str(alert.alert_id)


@pytest.mark.parametrize(
    "window",
    [
        {"since": "2026-01-01T00:05:00+00:00"},  # after the reads
        {"since": "2025-12-31T00:00:00+00:00", "until": "2026-01-01T00:00:00+00:00"},
    ],
)
def test_an_incident_declared_from_an_alert_holds_the_alerts_evidence(
    services: Services, window: dict[str, str]
) -> None:
    """Hole (round 58): mallory, the officer the alert is about (who may not dismiss it),
    declared an incident from it with a window that opens after their reads, or ends
    before them: its scope said no patient was affected. Refused, nothing declared;
    a window opening earlier still is taken."""
    _staff(services, "mallory", Role.PRIVACY_OFFICER, None)
    alert_id = _officer_read_and_alerted(services)
    mallory = Actor("staff:mallory")
    case = {**case_from_alert(services, alert_id), **window}
    with pytest.raises(IncidentError, match="holds its evidence"):
        declare_case(services, mallory, case, alert_id=alert_id)
    assert incidents_for(services).all() == []
    earlier = {**case_from_alert(services, alert_id), "since": "2025-12-31T00:00:00+00:00"}
    declared = declare_case(services, mallory, earlier, alert_id=alert_id)
    assert declared.alert_id == alert_id


def test_a_regulators_report_of_an_incident_declared_from_an_alert_says_when_it_was_raised(
    services: Services,
) -> None:
    """The report's deadlines run from the declaration; it also says when the detectors
    raised the alert the incident was declared from (integrator round 68 left it unsaid:
    a group warned days before it declared could not see it in its reports)."""
    from carevault.clock import from_micros
    from carevault.incidents import compute_scope
    from carevault.notify.reporting import make_report
    from carevault.notify.scope import parse_scope

    _staff(services, "mallory", Role.PRIVACY_OFFICER, None)
    alert_id = _officer_read_and_alerted(services)
    case = {**case_from_alert(services, alert_id), "since": "2025-12-31T00:00:00+00:00"}
    declared = declare_case(services, Actor("staff:officer1"), case, alert_id=alert_id)
    document = compute_scope(services, declared.incident_id, actor=Actor("staff:officer1"))
    report = make_report(services, parse_scope(document.document), "gdpr")
    said = report["article_33"]["nature_of_breach"]["detected_by_alert"]
    assert said["alert"] == alert_id
    raised = services.detection.alerts.get(alert_id).raised_us  # type: ignore[union-attr]
    assert said["raised"] == from_micros(raised).isoformat()
