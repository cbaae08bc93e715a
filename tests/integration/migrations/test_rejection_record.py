"""records_0030: the record a refused import line named (``bulk_import_rejection.record``)
comes and goes with the revision; refusals recorded before keep NULL (a run resumed over
them judges as it did), on SQLite and PostgreSQL. What it is for is in
tests/integration/importjobs/test_adversary_round62.py (a resumed import)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from carevault.migrations import downgrade, upgrade
from carevault.migrations.records.versions import r0030_rejection_record
from tests.integration.migrations.conftest import column_names

# Each test takes its stores through the migrations itself, from nothing.
pytestmark = [pytest.mark.fresh_home, pytest.mark.postgres]

REVISION = r0030_rejection_record.revision
BEFORE = r0030_rejection_record.down_revision
COLUMN = r0030_rejection_record.COLUMN


def test_refusals_recorded_before_name_no_record_and_the_column_comes_and_goes(
    engine: Engine,
) -> None:
    upgrade("records", engine, BEFORE)
    assert COLUMN not in column_names(engine, "bulk_import_rejection")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO bulk_import_rejection (file_sha256, line, reason)"
                " VALUES ('f', 3, 'a home clinic changes only by a transfer')"
            )
        )
    upgrade("records", engine, REVISION)
    assert COLUMN in column_names(engine, "bulk_import_rejection")
    with engine.connect() as connection:
        kept = connection.execute(text("SELECT line, record FROM bulk_import_rejection")).all()
    assert [tuple(row) for row in kept] == [(3, None)]
    downgrade("records", engine, BEFORE)
    assert COLUMN not in column_names(engine, "bulk_import_rejection")
    with engine.connect() as connection:
        lines = connection.execute(text("SELECT line FROM bulk_import_rejection")).scalars()
        assert list(lines) == [3]
