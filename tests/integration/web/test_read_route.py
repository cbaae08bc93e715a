"""The read by id over HTTP: what the event loop cannot do without waiting (a data key
to unwrap, a refused token to record) is done in a worker thread, and answered as any
other read; a revoked session stops reads at once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.web.app import create_app
from tests.support.client import FhirTestClient, register_patient
from tests.support.ledgers import audit_events, unwraps
from tests.support.staff import Staff, make_staff


@dataclass
class Clinic:
    services: Services
    web: FhirTestClient
    desk: Staff
    patient: str

    def entries(self) -> list[AuditEvent]:
        return audit_events(self.services)

    def unwraps(self) -> int:
        return unwraps(self.services)


@pytest.fixture
def clinic(services: Services) -> Iterator[Clinic]:
    with FhirTestClient(create_app(services.settings, services)) as web:
        officer = make_staff(services, Role.PRIVACY_OFFICER, ["clinic-a"])
        desk = make_staff(services, Role.FRONT_DESK, ["clinic-a"])
        patient = register_patient(
            web, officer.headers, desk.headers, "clinic-a", "Route", "Ka Yan"
        )
        yield Clinic(services, web, desk, patient)


def test_a_read_whose_data_key_must_be_unwrapped_is_answered_and_logged(clinic: Clinic) -> None:
    keys = clinic.services.keys
    assert keys is not None  # the test settings encrypt
    keys.forget_cached()
    unwraps = clinic.unwraps()
    response = clinic.web.get(f"/fhir/Patient/{clinic.patient}", headers=clinic.desk.headers)
    assert response.status_code == 200, response.text
    assert response.json()["name"][0]["family"] == "Route"
    assert clinic.unwraps() == unwraps + 1
    last = clinic.entries()[-1]
    assert (last.tag, last.outcome, last.resource_id) == (
        Tag.FHIR_READ,
        Outcome.SUCCESS,
        clinic.patient,
    )
    # The key is at hand now: the next read unwraps nothing.
    again = clinic.web.get(f"/fhir/Patient/{clinic.patient}", headers=clinic.desk.headers)
    assert again.status_code == 200
    assert clinic.unwraps() == unwraps + 1


def test_a_revoked_session_reads_nothing_and_its_refusal_is_recorded(clinic: Clinic) -> None:
    path = f"/fhir/Patient/{clinic.patient}"
    assert clinic.web.get(path, headers=clinic.desk.headers).status_code == 200
    session = clinic.services.access.authenticate(clinic.desk.token).session_id
    clinic.services.sessions.revoke(session, "test")
    refused = clinic.web.get(path, headers=clinic.desk.headers)
    assert refused.status_code == 401
    assert "Route" not in refused.text
    last = clinic.entries()[-1]
    assert (last.tag, last.outcome, last.session_id) == (
        Tag.AUTH_TOKEN_REFUSED,
        Outcome.DENIED,
        session,
    )
