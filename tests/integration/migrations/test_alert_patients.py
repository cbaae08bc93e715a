"""records_0028: every patient an alert names, one row each, comes with its revision
filled from the alerts' lists as stored, and goes on downgrade, on SQLite and
PostgreSQL; what it is for is in tests/integration/detect/test_alert_patients.py."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import inspect, text

from carevault.config import Settings
from carevault.db import make_engine
from carevault.migrations import downgrade, upgrade
from carevault.migrations.records.versions import r0028_alert_patients

# Each test takes its stores through the migrations itself, from nothing.
pytestmark = [pytest.mark.fresh_home, pytest.mark.postgres]

REVISION = r0028_alert_patients.revision
BEFORE = r0028_alert_patients.down_revision
TABLE = r0028_alert_patients.TABLE


def test_the_alerts_listed_patients_are_kept_from_records_0028(settings: Settings) -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)

    def tables() -> set[str]:
        return set(inspect(engine).get_table_names())

    try:
        upgrade("records", engine, BEFORE)
        assert TABLE not in tables()
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
        assert TABLE in tables()
        with engine.connect() as connection:
            rows = connection.execute(
                text(f"SELECT alert_id, patient_pseudonym FROM {TABLE} ORDER BY 1, 2")
            ).all()
        assert [tuple(row) for row in rows] == [(3, "p1"), (3, "p2")]
        downgrade("records", engine, BEFORE)
        assert TABLE not in tables()
    finally:
        engine.dispose()
