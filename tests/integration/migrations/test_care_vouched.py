"""records_0027: the table of whom care teams and referrals ever opened a record to
comes with its revision, holding what the care teams and referrals standing then had
opened (not visits or bookings), and goes on downgrade, on SQLite and PostgreSQL; what
it is for is in tests/integration/access/test_adversary_round50.py."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from carevault.migrations import downgrade, upgrade
from carevault.migrations.records.versions import r0027_care_vouched
from tests.integration.migrations.conftest import table_names

# Each test takes its stores through the migrations itself, from nothing.
pytestmark = [pytest.mark.fresh_home, pytest.mark.postgres]

REVISION = r0027_care_vouched.revision
BEFORE = r0027_care_vouched.down_revision
TABLE = r0027_care_vouched.TABLE


def test_what_standing_care_teams_and_referrals_opened_is_kept_from_records_0027(
    engine: Engine,
) -> None:
    upgrade("records", engine, BEFORE)
    assert TABLE not in table_names(engine)
    with engine.begin() as connection:
        for row_id, kind in ((7, "ServiceRequest"), (8, "Encounter")):
            connection.execute(
                text(
                    "INSERT INTO resource_head (row_id, resource_type, resource_id,"
                    " version_id, last_updated_us, deleted)"
                    " VALUES (:row, :kind, :id, 1, 5, false)"
                ),
                {"row": row_id, "kind": kind, "id": f"r{row_id}"},
            )
            connection.execute(
                text(
                    "INSERT INTO care_relationship (patient_pseudonym, clinic_id,"
                    " source_row_id, valid_from_us, valid_until_us)"
                    " VALUES ('p1', :clinic, :row, 10, 20)"
                ),
                {"clinic": f"clinic-{row_id}", "row": row_id},
            )
    upgrade("records", engine, REVISION)
    assert TABLE in table_names(engine)
    with engine.connect() as connection:
        rows = connection.execute(
            text(f"SELECT patient_pseudonym, clinic_id, vouched_us FROM {TABLE}")
        ).all()
    assert [tuple(row) for row in rows] == [("p1", "clinic-7", 10)]
    downgrade("records", engine, BEFORE)
    assert TABLE not in table_names(engine)
