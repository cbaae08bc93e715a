"""Stop 65 through ``$import``: a line holding a government number in any Identifier but
the Patient resource's own ``identifier`` list is refused by line, its element named and
its number not quoted (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

import pytest

from tests.integration.bulk.test_government_ids import NUMBERS, REFUSED, lines
from tests.integration.export.conftest import MINE
from tests.integration.importjobs.conftest import Clinic
from tests.integration.importjobs.test_import_api import ndjson, outcome_of, refused_lines

pytestmark = pytest.mark.postgres


def test_a_line_with_a_government_number_outside_patient_identifier_is_refused(
    clinic: Clinic,
) -> None:
    token = clinic.client("importer", clinics=[MINE])
    job_id = clinic.kick_off(token, ndjson(*lines(MINE)))
    clinic.work()
    result = outcome_of(clinic, token, job_id)

    assert "3 accepted, 6 rejected" in result["issue"][0]["diagnostics"]
    refused = refused_lines(result)
    assert set(refused) == set(REFUSED)
    for line, element in REFUSED.items():
        assert element in refused[line] and "Patient.identifier" in refused[line]
    assert not any(number in json.dumps(result) for number in NUMBERS)
