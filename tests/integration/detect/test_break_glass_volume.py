"""Break-the-glass sweeps (adv4, finding 4): a doctor of another clinic breaking the
glass for patient after patient of clinic A, reading each. Every read is explained by
its grant, so only the grants can show the sweep: more than
``detect_break_glass_per_hour`` distinct patients in an hour raise
``break-glass-volume``; as many as the limit raise nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from carevault.detect import alerts_as_dicts
from carevault.domain.roles import Role
from tests.integration.detect.conftest import Clinic, clinic_settings, opened_clinic
from tests.support.staff import Staff, make_staff

SWEPT = 12
#: Words long enough for any minimum the grant asks of them.
WORDS = "covering for Dr Wong on the ward round"


@pytest.fixture
def clinic(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    settings = clinic_settings(
        backend, tmp_path, request, detect_responses="medium=raise,high=raise,critical=raise"
    )
    bodies = (
        {
            "resourceType": "Patient",
            "name": [{"family": f"Star{n}", "given": ["Famous"]}],
            "managingOrganization": {"reference": "Organization/clinic-a"},
        }
        for n in range(SWEPT)
    )
    with opened_clinic(settings, bodies) as opened:
        yield opened


def _break_glass(clinic: Clinic, doctor: Staff, patients: list[str]) -> None:
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "reason", "valueCode": "covering-for-colleague"},
            {"name": "text", "valueString": WORDS},
        ],
    }
    for patient in patients:
        granted = clinic.web.post_json(
            f"/fhir/Patient/{patient}/$break-glass", body, **doctor.headers
        )
        assert granted.status_code in (200, 201), granted.text
        assert clinic.read(doctor, patient) == 200
        clinic.clock.advance(5)


def _mine(clinic: Clinic, doctor: Staff) -> list[dict[str, object]]:
    return [a for a in alerts_as_dicts(clinic.services) if a["account"] == doctor.account.username]


def test_breaking_the_glass_for_a_clinic_in_minutes_raises_an_alert(clinic: Clinic) -> None:
    doctor = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-b"])
    _break_glass(clinic, doctor, clinic.patients)
    (alert,) = _mine(clinic, doctor)
    assert alert["detector"] == "break-glass-volume"
    # Twice the default limit (5) and more: high, naming every patient swept.
    assert alert["severity"] == "high"
    assert alert["patient_count"] == SWEPT


def test_a_few_grants_in_an_hour_raise_nothing(clinic: Clinic) -> None:
    doctor = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-b"])
    _break_glass(clinic, doctor, clinic.patients[:5])
    # The same patient again is a renewal, not one more patient swept.
    _break_glass(clinic, doctor, clinic.patients[:1])
    assert _mine(clinic, doctor) == []


def test_a_sweep_split_across_two_logins_of_one_doctor_raises_an_alert(clinic: Clinic) -> None:
    """Three patients with each of two logins naming one practitioner: six, past the five
    an hour that neither login alone passes (the person's sweep, stop 46)."""
    first = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-b"], "dr-sweep")
    second = make_staff(clinic.services, Role.NURSE, ["clinic-b"], "dr-sweep")
    _break_glass(clinic, first, clinic.patients[:3])
    _break_glass(clinic, second, clinic.patients[3:6])
    assert _mine(clinic, first) == []
    (alert,) = _mine(clinic, second)
    assert alert["detector"] == "break-glass-volume"
    assert "with the logins of one practitioner" in str(alert["explanation"])
    assert alert["patient_count"] == 6
