"""Adversary round 78: an officer's pull of a patient's access report (or an AuditEvent
search by patient) is a release of that patient (round 51: it tells who opened which of
their records and the categories they touched, ``sensitive_clinical`` among them). Its
entry (``audit:ledger:read``) named the patient but no category, and its tag was not
among the releases the incident scope counts: an incident declared on an officer whose
login was stolen did not list the patients whose reports the thief pulled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from carevault.incidents import Actor, compute_scope, declare_case
from tests.integration.detect.conftest import (
    Clinic,
    clinic_patients,
    clinic_settings,
    opened_clinic,
)

pytestmark = pytest.mark.postgres


def _officers_scope(clinic: Clinic, since: datetime) -> dict[str, dict[str, Any]]:
    case = {
        "title": "the officer's login was stolen",
        "accounts": [clinic.officer.account.username],
        "since": since.isoformat(),
        "until": (datetime.now(UTC) + timedelta(seconds=1)).isoformat(),
    }
    incident = declare_case(clinic.services, Actor("staff:other"), case).incident_id
    run = compute_scope(clinic.services, incident, actor=Actor("staff:other"))
    assert run.document is not None
    return {line["patient"]: line for line in run.document["tiers"]["confirmed"]}


@pytest.mark.parametrize(
    "path",
    ["/audit/patients/{patient}/access-report", "/fhir/AuditEvent?patient=Patient/{patient}"],
)
def test_a_report_pulled_puts_its_patient_in_the_officers_scope_with_what_it_told(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, path: str
) -> None:
    settings = clinic_settings(backend, tmp_path, request)
    with opened_clinic(settings, clinic_patients(2)) as clinic:
        patient, other = clinic.patients
        read = clinic.web.get(f"/fhir/Patient/{patient}", headers=clinic.desk.headers)
        assert read.status_code == 200
        since = datetime.now(UTC)
        pulled = clinic.web.get(path.format(patient=patient), headers=clinic.officer.headers)
        assert pulled.status_code == 200, pulled.text
        confirmed = _officers_scope(clinic, since)
        assert set(confirmed) == {patient}
        # The desk's read of the name: the report told the officer what it touched.
        assert "identity" in confirmed[patient]["categories"]
