"""Notices from the incident module's own scope document: an incident declared for the
attacker's address, its scope computed from the ledger, each patient notified once."""

from __future__ import annotations

import pytest

from carevault.fhir import jsonio
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller
from carevault.ledger.events import Tag
from carevault.notify import store as states
from carevault.notify.scope import parse_scope
from carevault.notify.service import send_job
from carevault.notify.store import NoticeStore
from carevault.sim.loader import SEED_CALLER
from carevault.vault.writer import Delete, Put
from tests.integration.notify.conftest import PEOPLE, Clinic
from tests.support.ledgers import audit_events
from tests.support.notify import ATTACKER, declared_from_abroad

#: The clinic's own desk, at the clinic's address (not the incident's).
HONEST_DESK = Caller(principal="staff:desk.honest", purpose="TREAT", source_address="198.51.100.7")

pytestmark = pytest.mark.postgres


def test_an_incident_scope_feeds_the_send_job(clinic: Clinic) -> None:
    incident_id, document = declared_from_abroad(clinic.services)
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
    the notices go to the details the attacker did not write, the desk's correction
    included: never to the attacker."""
    gate, patient = clinic.services.gate, RESOURCE_TYPES["Patient"]
    alice, ravi, lee = (clinic.ids[key] for key in ("en_email", "sms_only", "zh_hant"))

    gate.write(ATTACKER, [_email_of(clinic, alice, "inbox@attacker.example")])
    gate.write(ATTACKER, [_email_of(clinic, lee, "lee@attacker.example")])
    gate.write(ATTACKER, [Delete(patient, ravi)])
    gate.write(HONEST_DESK, [_email_of(clinic, lee, "lee.new@example.org")])
    _, document = declared_from_abroad(clinic.services)
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
        event.patient_pseudonym: event.detail.get("details_without_versions")
        for event in audit_events(clinic.services)
        if event.tag == Tag.NOTIFY_NOTICE_SENT
    }
    pseudonyms = {
        key: gate.vault.locate("Patient", clinic.ids[key]).head.patient_pseudonym
        for key in ("en_email", "sms_only", "zh_hant", "zh_email")
    }
    assert held[pseudonyms["en_email"]] == [2]
    assert held[pseudonyms["sms_only"]] == [2]  # the deletion
    assert held[pseudonyms["zh_hant"]] == [2]  # the desk's correction (3) is taken
    assert held[pseudonyms["zh_email"]] is None  # not written at all


def _email_of(clinic: Clinic, patient_id: str, email: str) -> Put:
    patient = RESOURCE_TYPES["Patient"]
    body = clinic.services.gate.read(SEED_CALLER, patient, patient_id).body or b"{}"
    resource = {**jsonio.load(body), "telecom": [{"system": "email", "value": email}]}
    return Put(patient, patient_id, resource)


def test_neither_a_record_written_again_nor_a_desks_unrelated_edit_brings_the_attackers_email_back(
    clinic: Clinic,
) -> None:
    """Two ways the record as it stands could carry the attacker's email past the first
    rule: they delete the record and PUT it again (a create in the ledger), or the desk
    later corrects only the address and saves the email the attacker had set with it."""
    gate, patient = clinic.services.gate, RESOURCE_TYPES["Patient"]
    alice, lee = clinic.ids["en_email"], clinic.ids["zh_hant"]
    again = _email_of(clinic, lee, "again@attacker.example")
    gate.write(ATTACKER, [Delete(patient, lee)])
    gate.write(ATTACKER, [again])
    gate.write(ATTACKER, [_email_of(clinic, alice, "inbox@attacker.example")])
    routine = jsonio.load(gate.read(SEED_CALLER, patient, alice).body or b"{}")
    routine["address"] = [{"line": ["Flat 9, 1 Shanghai Street"], "city": "Jordan"}]
    gate.write(HONEST_DESK, [Put(patient, alice, routine)])

    _, document = declared_from_abroad(clinic.services)
    scope = parse_scope(document)
    send_job(clinic.services).run(scope, ("confirmed", "decrypted"))
    recipients = {to for recipients, _ in clinic.sink.messages for to in recipients}

    assert {alice, lee} <= set(scope.changed)
    assert {"alice@example.com", "lee@example.org"} <= recipients
    assert not {"inbox@attacker.example", "again@attacker.example"} & recipients


def test_a_patient_deleted_then_erased_is_left_out_and_the_others_are_told(
    clinic: Clinic,
) -> None:
    """Deleted by the attacker, then erased (the data key shredded): no history can be
    read, so the patient is as the search found them (gone); the job goes on."""
    gate, patient = clinic.services.gate, RESOURCE_TYPES["Patient"]
    ravi = clinic.ids["sms_only"]
    pseudonym = gate.vault.locate("Patient", ravi).head.patient_pseudonym
    assert pseudonym is not None and clinic.services.keys is not None
    gate.write(ATTACKER, [Delete(patient, ravi)])
    clinic.services.keys.shred(pseudonym)

    _, document = declared_from_abroad(clinic.services)
    progress = send_job(clinic.services).run(parse_scope(document), ("confirmed", "decrypted"))

    assert progress.sent == len(PEOPLE) - 2  # the deceased, and Ravi
