"""records_0022: care relationships made before it keep no maker (NULL: they explain as
they did); the column comes and goes with the revision, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from carevault.config import Settings
from carevault.db import make_engine
from carevault.migrations import downgrade, upgrade
from carevault.migrations.records.versions import r0022_care_granted_by

# Each test takes its stores through the migrations itself, from nothing.
pytestmark = [pytest.mark.fresh_home, pytest.mark.postgres]

REVISION = r0022_care_granted_by.revision
BEFORE = r0022_care_granted_by.down_revision


def test_relationships_made_before_keep_no_maker(settings: Settings) -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)

    def columns() -> set[str]:
        return {column["name"] for column in inspect(engine).get_columns("care_relationship")}

    try:
        # records_0002 makes the table from its current definition: going down to the
        # revision before takes it back to the shape a database of that time has.
        upgrade("records", engine, REVISION)
        downgrade("records", engine, BEFORE)
        assert r0022_care_granted_by.COLUMN not in columns()
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO care_relationship (patient_pseudonym, clinic_id,"
                    " source_row_id, valid_from_us, valid_until_us)"
                    " VALUES ('p1', 'clinic-a', 7, 10, 20)"
                )
            )
        upgrade("records", engine, REVISION)
        assert r0022_care_granted_by.COLUMN in columns()
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT patient_pseudonym, granted_by FROM care_relationship")
            ).all()
        assert [tuple(row) for row in rows] == [("p1", None)]
    finally:
        engine.dispose()
