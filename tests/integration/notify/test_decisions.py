"""A notice printed in full for a privacy officer (``notify preview --patient``) is a
release of its person's data: the ledger names them, with what the notice showed, and an
incident declared on the officer lists them (SQLite and PostgreSQL).

Adversary round 76 left it open: ``notify:preview:shown`` named the Patient records only
in ``resource_id`` and ``detail.covers``, with no pseudonym and no category, and the
scope counted only ``fhir:*`` reads, so the scope of an incident on a compromised
officer did not list the people whose notices (name, address, what was exposed) it
printed, nor did their access reports show it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from carevault.bootstrap import Services
from carevault.incidents import Actor, declare_case, scope_document
from carevault.incidents.model import instant
from carevault.ledger.audit import ACCESS_TAGS, AuditQuery, each_matching
from carevault.ledger.events import Outcome, Tag
from carevault.notify.decisions import PreviewRefused, decisions_for
from carevault.notify.scope import Exposure, parse_scope
from tests.integration.access.group import HIV, Group, build_group, doctors_condition
from tests.support.client import FhirTestClient

pytestmark = pytest.mark.postgres

DECLARER = Actor("staff:officer2", "10.1.2.3")


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _declared(group: Group, account: str, since: str) -> dict[str, object]:
    case = {"title": "Phished", "accounts": [account], "since": since}
    incident = declare_case(group.services, DECLARER, case)
    return {
        "id": str(incident.incident_id),
        "document": scope_document(group.services, incident.incident_id),
    }


def test_a_notice_shown_in_full_puts_its_person_in_the_officers_scope(group: Group) -> None:
    """Fails before the fix: the preview's entry named no patient pseudonym and no
    category, and the scope of an incident on the officer who printed X's notice had no
    confirmed line for X (nor did X's access report list the print)."""
    patient = group.tm_patient
    doctors_condition(group, HIV)
    since = instant(group.services.now_us() - 1000)
    answer = group.call(group.doctor_tm, "GET", f"/fhir/Patient/{patient.id}/$everything")
    assert answer.status_code == 200, answer.text
    # The doctor's incident: X is to be notified of what the doctor read.
    first = _declared(group, group.doctor_tm.account.username, since)
    exposure: Exposure = next(
        e for e in parse_scope(first["document"]).notices() if patient.id in e.covers
    )
    assert "sensitive_clinical" in exposure.categories

    # The officer prints X's notice; later the officer's account is found compromised.
    officer = group.officer
    decisions_for(group.services).show_notice(
        str(first["id"]), officer.account.username, officer.totp(), exposure
    )
    (shown,) = group.events(Tag.NOTIFY_PREVIEW_SHOWN)
    pseudonym = group.services.vault.locate("Patient", patient.id).head.patient_pseudonym
    assert shown.outcome is Outcome.SUCCESS and shown.patient_pseudonym == pseudonym
    assert {"identity", "contact", "sensitive_clinical"} <= set(shown.categories)

    second = _declared(group, officer.account.username, since)
    document = second["document"]
    assert isinstance(document, dict)
    confirmed = {line["patient"]: line for line in document["tiers"]["confirmed"]}
    assert patient.id in confirmed
    assert {"identity", "contact", "sensitive_clinical"} <= set(confirmed[patient.id]["categories"])

    # X's access report lists the print (the report's own query).
    query = AuditQuery(patient_pseudonym=pseudonym, tags=ACCESS_TAGS, unrecognised_tags=True)
    actions = [event.tag for _, event, _ in each_matching(group.services.audit_ledger, query)]
    assert Tag.NOTIFY_PREVIEW_SHOWN in actions


def test_a_notice_of_a_record_the_ledger_cannot_name_is_not_shown(group: Group) -> None:
    """Fail closed: a covered record with no pseudonym (not on record) cannot be named
    in the ledger, so the go is refused, the refusal recorded, nothing shown."""
    officer = group.officer
    ghost = Exposure("no-such-patient", "confirmed", (), (), None, None, ())
    with pytest.raises(PreviewRefused, match="not on record"):
        decisions_for(group.services).show_notice(
            "1", officer.account.username, officer.totp(), ghost
        )
    (refused,) = group.events(Tag.NOTIFY_PREVIEW_SHOWN)
    assert refused.outcome is Outcome.DENIED and refused.patient_pseudonym is None
