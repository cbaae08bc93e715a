"""Adversary round 70: a break-the-glass grant or a care relationship written in the
database explains nothing to the detectors (SQLite and PostgreSQL).

A doctor who read a patient outside any care, and then had a grant row (claiming
emergency treatment) or a care relationship row inserted covering the read (an insider
who may write to the database), saw the read taken for explained: ``Explainer`` read the
grants' and the care relationships' clear columns. Now a row that does not match its
seal explains nothing; a grant so found is itself raised as a critical
``stored-data-altered`` alert."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import insert

from carevault.access.tables import break_glass, care_relationship
from carevault.bootstrap import Services
from carevault.detect import alerts_as_dicts
from carevault.domain.roles import Role
from carevault.ledger.events import AuditEvent, Outcome, Tag
from tests.integration.detect.conftest import Clinic, clinic_patients, raising_clinic
from tests.support.ledgers import patient_pseudonym
from tests.support.staff import Staff, make_staff


@pytest.fixture
def clinic(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    with raising_clinic(backend, tmp_path, request, clinic_patients(2, "Star", "Famous")) as opened:
        yield opened


def _vip_and_doctor(clinic: Clinic) -> tuple[str, Staff]:
    """A VIP of clinic A, and a doctor of clinic B: no care relationship with them."""
    detection = clinic.services.detection
    assert detection is not None
    vip = patient_pseudonym(clinic.services, clinic.patients[0])
    detection.flags.set("vip", vip, "staff:test-officer")
    return vip, make_staff(clinic.services, Role.PHYSICIAN, ["clinic-b"])


def _read(services: Services, doctor: Staff, vip: str, at_us: int, **claimed: str) -> None:
    """The doctor's read of the VIP, as the gate records it (``claimed``: a purpose)."""
    services.audit.record(
        [
            AuditEvent(
                tag=Tag.FHIR_READ,
                outcome=Outcome.SUCCESS,
                at_us=at_us,
                principal=f"staff:{doctor.account.username}",
                role="physician",
                clinic_ids=("clinic-b",),
                resource_type="Patient",
                patient_pseudonym=vip,
                categories=("identity",),
                **claimed,
            )
        ]
    )


def _vip_alerts(services: Services) -> list[tuple[str, str]]:
    return [
        (a["account"], a["severity"]) for a in alerts_as_dicts(services) if a["detector"] == "vip"
    ]


def test_a_grant_inserted_in_the_database_explains_no_emergency_read(clinic: Clinic) -> None:
    services = clinic.services
    vip, doctor = _vip_and_doctor(clinic)
    now = services.now_us()
    with services.engine.begin() as connection:
        connection.execute(
            insert(break_glass).values(
                grant_id="bg-after-the-fact",
                account_id=doctor.account.account_id,
                patient_pseudonym=vip,
                reason_code="emergency-treatment",
                reason_sealed=b"\x00" * 40,
                granted_us=now - 60_000_000,
                expires_us=now + 3_600_000_000,
                emergency=False,
            )
        )
    _read(services, doctor, vip, now, purpose="ETREAT", break_glass_reason="emergency-treatment")
    assert _vip_alerts(services) == [(doctor.account.username, "high")], (
        "the read was taken for explained by a forged grant"
    )
    assert any(a["detector"] == "stored-data-altered" for a in alerts_as_dicts(services))


def test_a_care_relationship_inserted_in_the_database_explains_no_read(clinic: Clinic) -> None:
    services = clinic.services
    vip, doctor = _vip_and_doctor(clinic)
    now = services.now_us()
    with services.engine.begin() as connection:
        connection.execute(
            insert(care_relationship).values(
                patient_pseudonym=vip,
                clinic_id="clinic-b",
                practitioner_token=None,
                source_row_id=1,
                valid_from_us=now - 3_600_000_000,
                valid_until_us=now + 3_600_000_000,
                granted_by=None,
            )
        )
    _read(services, doctor, vip, now)
    assert _vip_alerts(services) == [(doctor.account.username, "high")], (
        "the read was taken for care by a forged care relationship"
    )
