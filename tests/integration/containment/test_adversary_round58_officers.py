"""Adversary round 58: an officer erases a patient an open incident's scope holds.

``carevault erase`` (crypto-shredding) takes one privacy officer's fresh code. A patient
whose records a compromised account read is in the incident's scope; erased, the notice
job leaves them out as "no longer on record" and their records, the incident's evidence,
are gone for good. An officer who had read the patient themselves (or anyone) could so
keep the patient from ever being told. Now refused while an incident not closed holds
the patient (SQLite and PostgreSQL); once it is closed the erasure goes ahead.
"""

from __future__ import annotations

import pyotp
import pytest

from carevault.bootstrap import Services
from carevault.containment.service import ContainmentRefused, Officer
from carevault.domain.roles import Role
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller
from carevault.incidents import Actor, declare_case, incidents_for
from carevault.incidents.model import Amendment, Status
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.vault.writer import Put
from tests.support.console import ledger_events
from tests.support.staff import PASSWORD

pytestmark = pytest.mark.postgres

PATIENT = "victim-1"


def test_a_patient_an_open_incident_holds_is_not_erased(services: Services) -> None:
    assert services.keys is not None
    _, secret = services.accounts.add("po1", "Officer", Role.PRIVACY_OFFICER, ["tm"], PASSWORD)
    services.accounts.add("thief", "Thief", Role.FRONT_DESK, ["tm"], PASSWORD)
    system = Caller(principal="system:test")
    services.gate.write(
        system,
        [Put(RESOURCE_TYPES["Patient"], PATIENT, {"resourceType": "Patient", "id": PATIENT,
             "name": [{"text": "Chan Tai Man"}],
             "managingOrganization": {"reference": "Organization/tm"}})],
    )  # fmt: skip
    pseudonym = services.vault.patient_pseudonyms([PATIENT])[PATIENT]
    services.audit.record(
        [
            AuditEvent(
                tag=Tag.FHIR_READ,
                outcome=Outcome.SUCCESS,
                at_us=services.now_us(),
                principal="staff:thief",
                role="front_desk",
                resource_type="Patient",
                resource_id=PATIENT,
                patient_pseudonym=pseudonym,
                categories=("identity",),
            )
        ]
    )
    incident = declare_case(
        services,
        Actor("staff:po1"),
        {"title": "desk read a patient", "accounts": ["thief"], "since": "2026-01-01"},
    ).incident_id
    totp = pyotp.TOTP(secret)

    with pytest.raises(ContainmentRefused, match="scope of incident"):
        services.contain.erase_patient(
            Officer("po1", totp.now(), "127.0.0.1"), pseudonym, "erasure request #7", services.keys
        )
    # Not shredded: the record still opens.
    assert services.gate.read(system, RESOURCE_TYPES["Patient"], PATIENT).body
    refused = [e for e in ledger_events(services) if e["tag"] == Tag.CONTAIN_REFUSED]
    assert refused and f"incident {incident}" in refused[-1]["reason"]
    assert not [e for e in ledger_events(services) if e["tag"] == Tag.PATIENT_ERASED]

    # Closed, the incident holds no one back.
    incidents_for(services).amend(
        Actor("staff:po1"), incident, Amendment(status=Status.CLOSED),
        step_up=lambda action: "staff:po1",
    )  # fmt: skip
    code = totp.at(services.now_us() // 1_000_000 + 30)
    services.contain.erase_patient(
        Officer("po1", code, "127.0.0.1"), pseudonym, "erasure request #7", services.keys
    )
    assert [e for e in ledger_events(services) if e["tag"] == Tag.PATIENT_ERASED]
