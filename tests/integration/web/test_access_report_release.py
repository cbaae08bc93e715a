"""Adversary round 51: a patient's access report tells whoever pulls it who opened the
record, which records (type and id), the categories they touched (``sensitive_clinical``
says there is an HIV or psychiatric record, which an officer may not read), purposes and
break-the-glass reasons. Pulled for one patient after another (``GET /audit/patients/
{id}/access-report``), it was a read the release budget never counted, the detectors
never judged (its entry named the patient only in its detail) and the patient's own
report never showed. Now each report is a release of that patient: counted against the
officer's budget per patient (refused past it, 429, with the release-budget alert), judged
by the volume detectors, and listed in the patient's report."""

from __future__ import annotations

from pathlib import Path

import pytest

from carevault.config import Settings
from carevault.detect import alerts_as_dicts
from tests.integration.detect.conftest import (
    RAISE_ONLY,
    Clinic,
    clinic_patients,
    clinic_settings,
    opened_clinic,
)

#: The officer's budget in these tests: patients an hour (ten a day).
HOUR = 3


def _report(clinic: Clinic, patient: str) -> int:
    response = clinic.web.get(
        f"/audit/patients/{patient}/access-report", headers=clinic.officer.headers
    )
    return int(response.status_code)


def _budgeted(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Settings whose officer may be given ``HOUR`` patients an hour; alerts only."""
    return clinic_settings(
        backend,
        tmp_path,
        request,
        release_budget=f"privacy_officer={HOUR}/10",
        detect_responses=RAISE_ONLY,
    )


def test_access_reports_pulled_patient_after_patient_stop_at_the_release_budget(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = _budgeted(backend, tmp_path, request)
    with opened_clinic(settings, clinic_patients(HOUR + 2)) as clinic:
        statuses = [_report(clinic, patient) for patient in clinic.patients]
        assert statuses == [200] * HOUR + [429] * 2
        # A patient already given today costs nothing more: counted per patient.
        assert _report(clinic, clinic.patients[0]) == 200
        refused = clinic.web.get(
            f"/audit/patients/{clinic.patients[-1]}/access-report",
            headers=clinic.officer.headers,
        )
        assert "release budget" in refused.json()["issue"][0]["diagnostics"]
        detectors = {a["detector"] for a in alerts_as_dicts(clinic.services)}
        assert "release-budget" in detectors


def test_access_reports_of_many_patients_are_judged_as_reads_of_them(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # The officer's floor for distinct unexplained patients in an hour is 25: a report
    # of each of 30 patients is what 30 reads of them are.
    settings = clinic_settings(backend, tmp_path, request, detect_responses=RAISE_ONLY)
    with opened_clinic(settings, clinic_patients(30)) as clinic:
        assert {_report(clinic, patient) for patient in clinic.patients} == {200}
        alerts = alerts_as_dicts(clinic.services)
        breadth = [a for a in alerts if a["detector"] == "breadth"]
        assert breadth, alerts
        assert breadth[0]["account"] == clinic.officer.account.username


def test_a_patients_report_lists_who_pulled_their_access_history(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = clinic_settings(backend, tmp_path, request, detect=False)
    with opened_clinic(settings, clinic_patients(1)) as clinic:
        (patient,) = clinic.patients
        assert _report(clinic, patient) == 200
        again = clinic.web.get(
            f"/audit/patients/{patient}/access-report", headers=clinic.officer.headers
        ).json()
        pulls = [line for line in again["accesses"] if line["action"] == "audit:ledger:read"]
        assert pulls
        assert pulls[0]["who"] == f"staff:{clinic.officer.account.username}"


def test_an_audit_event_search_by_patient_is_that_patients_report_and_counts_as_one(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = _budgeted(backend, tmp_path, request)
    with opened_clinic(settings, clinic_patients(HOUR + 1)) as clinic:
        statuses = [
            clinic.web.get(
                f"/fhir/AuditEvent?patient=Patient/{patient}", headers=clinic.officer.headers
            ).status_code
            for patient in clinic.patients
        ]
        assert statuses == [200] * HOUR + [429]
        assert _report(clinic, clinic.patients[0]) == 200  # given already: nothing more
        assert _report(clinic, clinic.patients[-1]) == 429
