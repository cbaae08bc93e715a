"""Adversary round 57, counts that name their patient in another spelling: a desk asks
``Appointment?actor=X&_summary=count`` with X a patient's bare id (``actor`` may point at a
Patient, a Practitioner, a Location...: a bare id matches each), patient after patient.
Each answer says how many bookings X has, as ``actor=Patient/X`` does, which round 51
made name X in the ledger and spend the release budget (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from carevault.detect import alerts_as_dicts
from tests.integration.detect.conftest import Clinic
from tests.integration.gate.test_counts_by_patient import BUDGET, _released, booked

__all__ = ["booked"]


@pytest.mark.parametrize("spelling", ["{patient}", "Patient/{patient}"])
def test_a_count_by_a_patients_bare_id_at_a_reference_names_them(
    booked: Clinic, spelling: str
) -> None:
    for patient in booked.patients[:12]:
        actor = spelling.format(patient=patient)
        answered = booked.web.get(
            f"/fhir/Appointment?actor={actor}&_summary=count", headers=booked.desk.headers
        )
        assert answered.status_code == 200, answered.text
        assert answered.json()["total"] == 1
    assert _released(booked) == 12


def test_counts_by_bare_ids_asked_patient_by_patient_stop_at_the_release_budget(
    booked: Clinic,
) -> None:
    statuses = [
        booked.web.get(
            f"/fhir/Appointment?actor={patient}&_summary=count", headers=booked.desk.headers
        ).status_code
        for patient in booked.patients
    ]
    assert statuses == [200] * BUDGET + [429] * (len(booked.patients) - BUDGET)
    assert "release-budget" in {a["detector"] for a in alerts_as_dicts(booked.services)}
