"""Notices from the incident module's own scope document: an incident declared for the
attacker's address, its scope computed from the ledger, each patient notified once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from carevault.fhir import jsonio
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller
from carevault.incidents import Actor, declare_case, scope_document
from carevault.ledger.events import Tag
from carevault.notify import store as states
from carevault.notify.scope import parse_scope
from carevault.notify.service import send_job
from carevault.notify.store import NoticeStore
from carevault.sim.loader import SEED_CALLER
from carevault.vault.writer import Delete, Put
from tests.integration.notify.conftest import PEOPLE, Clinic
from tests.support.ledgers import audit_events
from tests.support.notify import ATTACKER

#: The clinic's own desk, at the clinic's address (not the incident's).
HONEST_DESK = Caller(principal="staff:desk.honest", purpose="TREAT", source_address="198.51.100.7")

pytestmark = pytest.mark.postgres


def _declared_from_abroad(clinic: Clinic) -> tuple[int, dict[str, Any]]:
    """An incident for the attacker's address over the last hour: its id and scope."""
    now = datetime.now(UTC)
    case = {
        "title": "A reception login used from abroad",
        "since": (now - timedelta(hours=1)).isoformat(),
        "until": (now + timedelta(minutes=1)).isoformat(),
        "addresses": ["203.0.113.66"],
    }
    incident = declare_case(clinic.services, Actor("staff:officer.test"), case)
    return incident.incident_id, scope_document(clinic.services, incident.incident_id)


def test_an_incident_scope_feeds_the_send_job(clinic: Clinic) -> None:
    incident_id, document = _declared_from_abroad(clinic)
    scope = parse_scope(document)
    confirmed = {e.patient_id for e in scope.exposures(("confirmed",))}
    assert confirmed == {clinic.ids[p.key] for p in PEOPLE}
    progress = send_job(clinic.services).run(scope, ("confirmed", "decrypted"))
    assert progress.sent == len(PEOPLE) - 1 and progress.skipped == 1
    rows = NoticeStore(clinic.services.engine).rows(str(incident_id))
    assert sum(1 for row in rows.values() if row.state == states.SENT) == len(PEOPLE) - 1
    recipients = [to for recipients, _ in clinic.sink.messages for to in recipients]
    assert len(recipients) == len(set(recipients)) == 6


def test_notices_go_to_the_details_held_before_the_attacker_changed_them(clinic: Clinic) -> None:
    """The stolen login rewrote one patient's email address to its own and deleted
    another's record; a third's it rewrote too, but the clinic's desk put right since.
    The scope lists the three as changed (with the ledger positions of the changes);
    the notices go to the details held before the first change, and to the desk's
    correction where there is one: never to the attacker."""
    gate, patient = clinic.services.gate, RESOURCE_TYPES["Patient"]
    alice, ravi, lee = (clinic.ids[key] for key in ("en_email", "sms_only", "zh_hant"))

    def with_email(patient_id: str, email: str) -> Put:
        resource = jsonio.load(gate.read(SEED_CALLER, patient, patient_id).body or b"{}")
        resource["telecom"] = [{"system": "email", "value": email}]
        return Put(patient, patient_id, resource)

    gate.write(ATTACKER, [with_email(alice, "inbox@attacker.example")])
    gate.write(ATTACKER, [with_email(lee, "lee@attacker.example")])
    gate.write(ATTACKER, [Delete(patient, ravi)])
    gate.write(HONEST_DESK, [with_email(lee, "lee.new@example.org")])
    _, document = _declared_from_abroad(clinic)
    scope = parse_scope(document)

    assert set(scope.changed) == {alice, ravi, lee}
    assert document["counts"]["changed"] == 3
    assert all(len(item.evidence) == 1 for item in scope.changed.values())
    progress = send_job(clinic.services).run(scope, ("confirmed", "decrypted"))
    assert progress.sent == len(PEOPLE) - 1  # the deleted patient's notice too
    recipients = {to for recipients, _ in clinic.sink.messages for to in recipients}
    assert {"alice@example.com", "lee.new@example.org"} <= recipients
    assert not {"inbox@attacker.example", "lee@attacker.example", "lee@example.org"} & recipients
    assert "+85291234567" in {message["to"] for message in clinic.sms.messages}
    held = {
        event.patient_pseudonym: event.detail.get("details_held_since")
        for event in audit_events(clinic.services)
        if event.tag == Tag.NOTIFY_NOTICE_SENT
    }
    pseudonyms = {
        key: gate.vault.locate("Patient", clinic.ids[key]).head.patient_pseudonym
        for key in ("en_email", "sms_only", "zh_hant", "zh_email")
    }
    assert held[pseudonyms["en_email"]] is not None
    assert held[pseudonyms["sms_only"]] is not None
    assert held[pseudonyms["zh_hant"]] is None  # the desk's correction stands
    assert held[pseudonyms["zh_email"]] is None  # not changed at all
