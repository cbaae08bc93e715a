"""A member of staff rewriting many patients' records in minutes (adversary pass of
December 2026): the detectors judge the writes of integration clients only (signals.py,
``client-writes``), so a front desk who replaced the phone number of every patient of
the clinic (where breach notices and verification codes go), blanking their names and
birth dates with the same blind PUT, raised nothing. A blind PUT releases no data, so the
release budget does not stop it either (a PATCH reads the record, and is counted).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from carevault.detect import alerts_as_dicts
from carevault.domain.roles import Role
from tests.integration.detect.conftest import Clinic, clinic_patients, raising_clinic
from tests.support.staff import make_staff

PATIENTS = 120


@pytest.fixture
def clinic(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    with raising_clinic(backend, tmp_path, request, clinic_patients(PATIENTS)) as opened:
        yield opened


@pytest.mark.xfail(
    strict=True,
    reason="detect/ judges only integration clients' writes; a staff account's mass "
    "rewrite of patients' contact details raises no alert (not fixed: detect/ is outside "
    "this pass's reach)",
)
def test_a_desk_rewriting_every_patients_phone_number_raises_an_alert(clinic: Clinic) -> None:
    thief = make_staff(clinic.services, Role.FRONT_DESK, ["clinic-a"])
    headers = {**thief.headers, "content-type": "application/fhir+json", "prefer": "return=minimal"}
    # A blind PUT reads nothing back (a PATCH reads, and is counted as a read).
    changed = [
        clinic.web.put(
            f"/fhir/Patient/{patient}",
            content=json.dumps(
                {
                    "resourceType": "Patient",
                    "id": patient,
                    "telecom": [{"system": "phone", "value": "+852 6000 0000"}],
                    "managingOrganization": {"reference": "Organization/clinic-a"},
                }
            ),
            headers=headers,
        ).status_code
        for patient in clinic.patients
    ]
    assert changed.count(200) >= 100, changed

    mine = [a for a in alerts_as_dicts(clinic.services) if a["account"] == thief.account.username]
    assert mine, "a desk rewrote the contact details of the whole clinic and nothing was raised"
