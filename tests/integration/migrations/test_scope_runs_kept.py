"""records_0020: scope runs kept before it are numbered in the order they were recorded
and keep no document; the new columns come and go with the revision, on SQLite and
PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from carevault.config import Settings
from carevault.db import make_engine
from carevault.migrations import downgrade, upgrade
from carevault.migrations.records.versions import r0020_scope_runs_kept

# Each test takes its stores through the migrations itself, from nothing.
pytestmark = [pytest.mark.fresh_home, pytest.mark.postgres]

BEFORE = r0020_scope_runs_kept.down_revision
ADDED = {name for name, _ in r0020_scope_runs_kept.ADDED}


def test_runs_recorded_before_are_numbered_per_incident(settings: Settings) -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)

    def columns() -> set[str]:
        return {column["name"] for column in inspect(engine).get_columns("incident_scope_run")}

    try:
        # records_0008 makes the table from its current definition: going down to the
        # revision before takes it back to the shape a database of that time has.
        upgrade("records", engine, "records_0020")
        downgrade("records", engine, BEFORE)
        assert not ADDED & columns()
        with engine.begin() as connection:
            for incident, at in ((1, 10), (2, 20), (1, 30), (1, 40)):
                connection.execute(
                    text(
                        "INSERT INTO incident_scope_run (incident_id, at_us, lines)"
                        " VALUES (:incident, :at, '{}')"
                    ),
                    {"incident": incident, "at": at},
                )
        upgrade("records", engine, "records_0020")
        assert columns() >= ADDED
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT incident_id, at_us, number, document FROM incident_scope_run"
                    " ORDER BY run_id"
                )
            ).all()
        assert [tuple(row) for row in rows] == [
            (1, 10, 1, None), (2, 20, 1, None), (1, 30, 2, None), (1, 40, 3, None)
        ]  # fmt: skip
        indexes = {index["name"] for index in inspect(engine).get_indexes("incident_scope_run")}
        assert "ux_incident_scope_run_number" in indexes
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO incident_scope_run (incident_id, at_us, lines, number)"
                    " VALUES (1, 50, '{}', 3)"
                )
            )
    finally:
        engine.dispose()
