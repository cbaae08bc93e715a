"""Emergency treatment (purpose ETREAT) explains an access only while the account holds
an active break-the-glass grant for that patient (SQLite and PostgreSQL): the grant
read is explained; an ETREAT entry for a patient with no grant, or after the grant
expired, is judged as any unexplained access (a VIP opened: an alert). A VIP read under
the grant is told to an officer (a low ``vip`` alert, adversary round 60) and contains
no one, under the built-in responses too: an emergency on a VIP must not stop treatment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from carevault.detect import alerts_as_dicts
from carevault.domain.roles import Role
from carevault.ledger.events import AuditEvent, Outcome, Tag
from tests.integration.detect.conftest import (
    Clinic,
    clinic_patients,
    clinic_settings,
    opened_clinic,
    raising_clinic,
)
from tests.support.ledgers import patient_pseudonym
from tests.support.staff import Staff, make_staff


@pytest.fixture
def clinic(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    with raising_clinic(backend, tmp_path, request, clinic_patients(3, "Star", "Famous")) as opened:
        yield opened


def _emergency_read(clinic: Clinic, who: Staff, pseudonym: str) -> None:
    """An entry that claims emergency treatment, as a component other than the gate's
    grant check might write it: the purpose alone."""
    clinic.services.audit.record(
        [
            AuditEvent(
                tag=Tag.FHIR_READ,
                outcome=Outcome.SUCCESS,
                at_us=clinic.services.now_us(),
                principal=f"staff:{who.account.username}",
                role="physician",
                clinic_ids=("clinic-b",),
                resource_type="Patient",
                patient_pseudonym=pseudonym,
                categories=("identity",),
                purpose="ETREAT",
                break_glass_reason="emergency-treatment",
            )
        ]
    )


def test_emergency_treatment_explains_only_under_an_active_grant(clinic: Clinic) -> None:
    detection = clinic.services.detection
    assert detection is not None
    granted, ungranted = clinic.patients[:2]
    vips = {
        patient: patient_pseudonym(clinic.services, patient) for patient in (granted, ungranted)
    }
    for pseudonym in vips.values():
        detection.flags.set("vip", pseudonym, "staff:test-officer")
    # A doctor of another clinic: no care relationship with clinic A's patients.
    doctor = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-b"])
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "reason", "valueCode": "emergency-treatment"},
            {"name": "text", "valueString": "collapsed in the waiting room"},
        ],
    }
    response = clinic.web.post_json(f"/fhir/Patient/{granted}/$break-glass", body, **doctor.headers)
    assert response.status_code in (200, 201), response.text
    assert clinic.read(doctor, granted) == 200  # ETREAT, under the grant
    _emergency_read(clinic, doctor, vips[granted])  # still under the grant
    (told,) = alerts_as_dicts(clinic.services)
    assert (told["detector"], told["severity"]) == ("vip", "low")
    assert detection.alerts.get(told["id"]).patients == (vips[granted],)

    _emergency_read(clinic, doctor, vips[ungranted])  # no grant for this patient
    (alert,) = [a for a in alerts_as_dicts(clinic.services) if a["id"] != told["id"]]
    assert (alert["detector"], alert["account"]) == ("vip", doctor.account.username)
    assert alert["severity"] == "high"
    assert detection.alerts.get(alert["id"]).patients == (vips[ungranted],)

    clinic.clock.advance(61 * 60)  # the grant (60 minutes) has expired
    _emergency_read(clinic, doctor, vips[granted])
    flagged = sorted(
        pseudonym
        for a in alerts_as_dicts(clinic.services)
        if a["detector"] == "vip" and a["severity"] == "high"
        for pseudonym in detection.alerts.get(a["id"]).patients
    )
    assert flagged == sorted(vips.values())


@pytest.fixture
def contained(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    """The built-in responses: medium steps up, high suspends."""
    settings = clinic_settings(backend, tmp_path, request)
    with opened_clinic(settings, clinic_patients(2, "Star", "Famous")) as opened:
        yield opened


def test_a_vip_under_a_grant_contains_no_one_under_the_built_in_responses(
    contained: Clinic,
) -> None:
    detection = contained.services.detection
    assert detection is not None
    vip = contained.patients[0]
    detection.flags.set("vip", patient_pseudonym(contained.services, vip), "staff:test-officer")
    doctor = make_staff(contained.services, Role.PHYSICIAN, ["clinic-b"])
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "reason", "valueCode": "emergency-treatment"},
            {"name": "text", "valueString": "collapsed in the waiting room"},
        ],
    }
    response = contained.web.post_json(f"/fhir/Patient/{vip}/$break-glass", body, **doctor.headers)
    assert response.status_code in (200, 201), response.text
    for _ in range(3):
        assert contained.read(doctor, vip) == 200  # treatment goes on
        (alert,) = alerts_as_dicts(contained.services)
        assert (alert["detector"], alert["severity"], alert["action"]) == ("vip", "low", "raise")
    account = contained.services.accounts.find(doctor.account.username)
    assert account is not None and not account.suspended
    assert not contained.services.containment.refresh().active
