"""The read by id with its audit entry queued (``Gate.read_later``), as the web layer's
event loop runs it: the record comes only once its entry is durable, a refusal only once
it is recorded, and a read that would have to wait on the loop records and spends
nothing (it is run again in a worker thread)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from carevault.access.accounts import Account
from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import AccessDenied, Caller, WouldBlock
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.vault.records import NotFound
from carevault.web.app import create_app
from tests.support.client import FhirTestClient, register_patient
from tests.support.ledgers import audit_events, unwraps
from tests.support.staff import Staff, caller_of, make_staff

PATIENT = RESOURCE_TYPES["Patient"]


@dataclass
class Clinic:
    services: Services
    desk: Staff
    stranger: Staff
    patient: str

    def caller(self, staff: Staff, budget: int = 10) -> Caller:
        return caller_of(self.services, staff, budget)

    def entries(self) -> list[AuditEvent]:
        return audit_events(self.services)

    def unwraps(self) -> int:
        return unwraps(self.services)


@pytest.fixture
def clinic(services: Services) -> Iterator[Clinic]:
    with FhirTestClient(create_app(services.settings, services)) as web:
        officer = make_staff(services, Role.PRIVACY_OFFICER, ["clinic-a"])
        desk = make_staff(services, Role.FRONT_DESK, ["clinic-a"])
        stranger = make_staff(services, Role.FRONT_DESK, ["clinic-b"])
        web.put_json(
            "/fhir/Organization/clinic-b",
            {"resourceType": "Organization", "id": "clinic-b", "name": "clinic-b"},
            **officer.headers,
        )
        patient = register_patient(web, officer.headers, desk.headers, "clinic-a", "Later", "Wing")
        yield Clinic(services, desk, stranger, patient)


def _last_read(entries: list[AuditEvent], account: Account) -> AuditEvent:
    principal = f"staff:{account.username}"
    reads = [e for e in entries if e.tag is Tag.FHIR_READ and e.principal == principal]
    return reads[-1]


def test_the_record_comes_with_its_entry_already_durable(clinic: Clinic) -> None:
    pending = clinic.services.gate.read_later(
        clinic.caller(clinic.desk), PATIENT, clinic.patient, may_block=False
    )
    opened = pending.result(timeout=30)
    assert opened.body is not None and b"Later" in opened.body
    event = _last_read(clinic.entries(), clinic.desk.account)
    assert event.outcome is Outcome.SUCCESS
    assert event.resource_id == clinic.patient


def test_a_refusal_comes_once_it_is_recorded(clinic: Clinic) -> None:
    pending = clinic.services.gate.read_later(
        clinic.caller(clinic.stranger), PATIENT, clinic.patient, may_block=False
    )
    with pytest.raises(AccessDenied):
        pending.result(timeout=30)
    assert _last_read(clinic.entries(), clinic.stranger.account).outcome is Outcome.DENIED
    missing = clinic.services.gate.read_later(clinic.caller(clinic.desk), PATIENT, "nobody")
    with pytest.raises(NotFound):
        missing.result(timeout=30)
    assert _last_read(clinic.entries(), clinic.desk.account).outcome is Outcome.FAILED


def test_a_read_that_would_unwrap_a_key_on_the_loop_records_and_spends_nothing(
    clinic: Clinic,
) -> None:
    keys = clinic.services.keys
    assert keys is not None  # the test settings encrypt
    keys.forget_cached()
    entries, unwraps = len(clinic.entries()), clinic.unwraps()
    caller = clinic.caller(clinic.desk, budget=1)
    with pytest.raises(WouldBlock):
        clinic.services.gate.read_later(caller, PATIENT, clinic.patient, may_block=False)
    assert (len(clinic.entries()), clinic.unwraps()) == (entries, unwraps)
    # Where it may wait (a worker thread) the same read, with the same budget of one record.
    opened = clinic.services.gate.read_later(caller, PATIENT, clinic.patient).result(timeout=30)
    assert opened.body is not None
    assert clinic.unwraps() == unwraps + 1
    assert len(clinic.entries()) == entries + 1
