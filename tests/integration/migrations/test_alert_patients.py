"""records_0028: every patient an alert names, one row each, comes with its revision
filled from the alerts' lists as stored, and goes on downgrade, on SQLite and
PostgreSQL; what it is for is in tests/integration/detect/test_alert_patients.py."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine, text

from carevault.migrations import downgrade, upgrade
from carevault.migrations.records.versions import r0028_alert_patients
from tests.integration.migrations.conftest import table_names

# Each test takes its stores through the migrations itself, from nothing.
pytestmark = [pytest.mark.fresh_home, pytest.mark.postgres]

REVISION = r0028_alert_patients.revision
BEFORE = r0028_alert_patients.down_revision
TABLE = r0028_alert_patients.TABLE


def test_the_alerts_listed_patients_are_kept_from_records_0028(engine: Engine) -> None:
    upgrade("records", engine, BEFORE)
    assert TABLE not in table_names(engine)
    with engine.begin() as connection:
        for alert_id, patients in ((3, ["p2", "p1", "p2"]), (4, [])):
            connection.execute(
                text(
                    "INSERT INTO detect_alert (alert_id, dedup_key, case_key, detector,"
                    " severity, patient_count, patients, raised_us, updated_us, status,"
                    " explanation) VALUES (:id, :key, 'case:x', 'breadth', 'medium',"
                    " :count, :patients, 1, 1, 'open', '')"
                ),
                {
                    "id": alert_id,
                    "key": f"breadth|x|{alert_id}",
                    "count": len(set(patients)),
                    "patients": json.dumps(patients),
                },
            )
    upgrade("records", engine, REVISION)
    assert TABLE in table_names(engine)
    with engine.connect() as connection:
        rows = connection.execute(
            text(f"SELECT alert_id, patient_pseudonym FROM {TABLE} ORDER BY 1, 2")
        ).all()
    assert [tuple(row) for row in rows] == [(3, "p1"), (3, "p2")]
    downgrade("records", engine, BEFORE)
    assert TABLE not in table_names(engine)
