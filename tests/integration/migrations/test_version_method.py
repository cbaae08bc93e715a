"""records_0025: each version's HTTP method (``resource_version.method``) comes and goes
with the revision; versions written before keep NULL (their history infers the method),
on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from carevault.config import Settings
from carevault.db import make_engine
from carevault.migrations import downgrade, upgrade
from carevault.migrations.records.versions import r0025_version_method

# Each test takes its stores through the migrations itself, from nothing.
pytestmark = [pytest.mark.fresh_home, pytest.mark.postgres]

REVISION = r0025_version_method.revision
BEFORE = r0025_version_method.down_revision


def test_versions_written_before_keep_no_method_and_the_column_comes_and_goes(
    settings: Settings,
) -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)

    def has_column() -> bool:
        columns = inspect(engine).get_columns("resource_version")
        return r0025_version_method.COLUMN in {column["name"] for column in columns}

    try:
        upgrade("records", engine, BEFORE)
        assert not has_column()
        with engine.begin() as connection:
            for version, deleted in ((1, False), (2, False), (3, True)):
                connection.execute(
                    text(
                        "INSERT INTO resource_version (resource_type, resource_id, version_id,"
                        " last_updated_us, deleted) VALUES ('Observation', 'o1', :version, 10,"
                        " :deleted)"
                    ),
                    {"version": version, "deleted": deleted},
                )
        upgrade("records", engine, REVISION)
        assert has_column()
        with engine.begin() as connection:
            kept = connection.execute(
                text("SELECT version_id, method FROM resource_version ORDER BY version_id")
            ).all()
            assert [tuple(row) for row in kept] == [(1, None), (2, None), (3, None)]
            connection.execute(
                text(
                    "INSERT INTO resource_version (resource_type, resource_id, version_id,"
                    " last_updated_us, deleted, method) VALUES ('Observation', 'o1', 4, 20,"
                    " false, 'PUT')"
                )
            )
        downgrade("records", engine, BEFORE)
        assert not has_column()
        with engine.connect() as connection:
            versions = connection.execute(
                text("SELECT version_id FROM resource_version ORDER BY version_id")
            ).scalars()
            assert list(versions) == [1, 2, 3, 4]
    finally:
        engine.dispose()
