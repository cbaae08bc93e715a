"""Adversary round 79 through ``$import``: a client of one clinic gives a line another
clinic's patient's medical record number, the proof ``Patient/$register`` takes beside the
HKID (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from carevault.access.tables import sign_in_throttle
from tests.integration.export.conftest import MINE, OTHER, patient, put
from tests.integration.importjobs.conftest import Clinic
from tests.integration.importjobs.test_import_api import ndjson, outcome_of, refused_lines

pytestmark = pytest.mark.postgres

MRN_SYSTEM = "http://carevault.hk/sid/mrn"


def _with_mrn(patient_id: str, clinic_id: str, number: str) -> dict[str, Any]:
    return {
        **patient(patient_id, clinic_id, "Fam"),
        "identifier": [{"system": MRN_SYSTEM, "value": number}],
    }


def test_a_line_giving_another_clinics_patients_record_number_is_refused_and_counted(
    clinic: Clinic,
) -> None:
    """The client's line twinning the other clinic's patient by its record number is
    refused alone (FAILS on main: both lines were accepted, and every registration by the
    number became ambiguous); the client's other new patient goes in, and the refusal
    counts once against the client's registration throttle."""
    put(clinic.services, _with_mrn("p-known", OTHER, "MRN-0001"))
    token = clinic.client("importer", clinics=[MINE])
    lines = [_with_mrn("p-new", MINE, "MRN-0002"), _with_mrn("p-twin", MINE, "MRN-0001")]
    job_id = clinic.kick_off(token, ndjson(*lines))
    clinic.work()
    result = outcome_of(clinic, token, job_id)

    assert "1 accepted, 1 rejected" in result["issue"][0]["diagnostics"]
    assert list(refused_lines(result)) == [2]
    assert "p-known" not in str(result)
    with clinic.services.engine.connect() as connection:
        counted = connection.execute(
            select(sign_in_throttle.c.level).where(
                sign_in_throttle.c.kind == "registration", sign_in_throttle.c.level > 0
            )
        ).all()
    assert [round(level) for (level,) in counted] == [1], counted
