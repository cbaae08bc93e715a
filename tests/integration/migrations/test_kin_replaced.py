"""records_0026: the table of kinship tokens a write replaced comes with its revision
(empty: nothing earlier writes replaced was kept) and goes on downgrade, on SQLite and
PostgreSQL; what it is for is in tests/integration/detect/test_kin_write_games.py."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, inspect, text

from carevault.migrations import downgrade, upgrade
from carevault.migrations.records.versions import r0026_kin_replaced
from tests.integration.migrations.conftest import table_names

# Each test takes its stores through the migrations itself, from nothing.
pytestmark = [pytest.mark.fresh_home, pytest.mark.postgres]

REVISION = r0026_kin_replaced.revision
BEFORE = r0026_kin_replaced.down_revision
TABLE = r0026_kin_replaced.TABLE


def test_replaced_kin_tokens_come_and_go_with_records_0026(engine: Engine) -> None:
    upgrade("records", engine, BEFORE)
    assert TABLE not in table_names(engine)
    upgrade("records", engine, REVISION)
    assert TABLE in table_names(engine)
    indexes = {index["name"] for index in inspect(engine).get_indexes(TABLE)}
    assert {"ix_patient_kin_replaced_patient", "ix_patient_kin_replaced_at"} <= indexes
    with engine.begin() as connection:
        assert connection.execute(text(f"SELECT count(*) FROM {TABLE}")).scalar_one() == 0
        # The id is drawn by the database (a sequence on PostgreSQL, the rowid on SQLite).
        for replaced_us in (10, 20):
            connection.execute(
                text(
                    f"INSERT INTO {TABLE} (patient_pseudonym, kind, token, replaced_us)"
                    " VALUES ('p1', 'surname', :token, :at)"
                ),
                {"token": b"\x01" * 16, "at": replaced_us},
            )
        ids = connection.execute(
            text(f"SELECT replaced_id FROM {TABLE} ORDER BY replaced_us")
        ).scalars()
        assert len(set(ids)) == 2
    downgrade("records", engine, BEFORE)
    assert TABLE not in table_names(engine)
