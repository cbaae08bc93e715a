"""Writes a watched account plays to have its reads not counted (SQLite and
PostgreSQL). The watch after a step-up leaves out patients the account itself created,
a new patient at the desk; whoever holds a phished desk account after the step-up
deletes another desk's patient and writes the record again at its id (a create, as R4
has it), then reads the patient's visits: each re-created patient must still be
counted."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.detect.test_step_up_evasion import ALLOWED, _suspended, stepped_up


def test_a_patient_deleted_and_written_again_is_no_new_patient_to_the_watch(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with stepped_up(backend, tmp_path, request) as clinic:
        web, desk = clinic.web, clinic.desk
        for patient in clinic.patients[: ALLOWED + 1]:
            gone = web.delete(f"/fhir/Patient/{patient}", headers=desk.headers)
            assert gone.status_code in (200, 204), gone.text
            again = {
                "resourceType": "Patient",
                "id": patient,
                "name": [{"family": "Again", "given": ["Tai Man"]}],
                "managingOrganization": {"reference": "Organization/clinic-a"},
            }
            made = web.put_json(f"/fhir/Patient/{patient}", again, **desk.headers)
            assert made.status_code == 201, made.text
            got = web.get(f"/fhir/Patient/{patient}/$everything", headers=desk.headers)
            assert got.status_code in (200, 401), got.text
        _suspended(clinic)
