"""records_0029: an export job's ``patient`` list (``export_job.patients``) comes and goes
with the revision; jobs asked before keep NULL (every patient in reach, as they were
approved), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from carevault.config import Settings
from carevault.db import make_engine
from carevault.migrations import downgrade, upgrade
from carevault.migrations.records.versions import r0029_export_patients

# Each test takes its stores through the migrations itself, from nothing.
pytestmark = [pytest.mark.fresh_home, pytest.mark.postgres]

REVISION = r0029_export_patients.revision
BEFORE = r0029_export_patients.down_revision
_INSERT = (
    "INSERT INTO export_job (job_id, level, client_id, principal, caller, types,"
    " request_url, status, approvals_needed, approvals, requested_us, updated_us,"
    " batches_done, cursor_row, patients_total, patients_done, resources_done, key_id)"
    " VALUES (:job, 'patient', 'app', 'client:app', '{}', '', 'u', 'pending', 1, '[]', 1, 1,"
    " 0, 0, 0, 0, 0, 'k')"
)


def test_jobs_asked_before_keep_no_patient_list_and_the_column_comes_and_goes(
    settings: Settings,
) -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)

    def has_column() -> bool:
        columns = inspect(engine).get_columns("export_job")
        return r0029_export_patients.COLUMN in {column["name"] for column in columns}

    try:
        upgrade("records", engine, BEFORE)
        assert not has_column()
        with engine.begin() as connection:
            connection.execute(text(_INSERT), {"job": "before"})
        upgrade("records", engine, REVISION)
        assert has_column()
        with engine.begin() as connection:
            kept = connection.execute(text("SELECT patients FROM export_job")).scalars()
            assert list(kept) == [None]
        downgrade("records", engine, BEFORE)
        assert not has_column()
        with engine.connect() as connection:
            jobs = connection.execute(text("SELECT job_id FROM export_job")).scalars()
            assert list(jobs) == ["before"]
    finally:
        engine.dispose()
