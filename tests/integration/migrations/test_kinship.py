"""records_0013: the kinship tables and the session's step-up column come with their
revision and go on downgrade, on SQLite and PostgreSQL; Patients written before are
given their kinship tokens by reindexing (tests/integration/detect/test_snooping.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, inspect

from carevault.migrations import downgrade, upgrade
from carevault.migrations.records.versions import r0013_kinship
from tests.integration.migrations.conftest import table_names

# Each test takes its stores through the migrations itself, from nothing.
pytestmark = pytest.mark.fresh_home

BEFORE = r0013_kinship.down_revision


def test_kinship_and_step_up_come_and_go_with_records_0013(engine: Engine) -> None:
    def session_columns() -> set[str]:
        return {column["name"] for column in inspect(engine).get_columns("auth_session")}

    upgrade("records", engine, BEFORE)
    assert not {"patient_kin", "detect_staff_kin"} & table_names(engine)
    assert "step_up_us" not in session_columns()
    upgrade("records", engine, "records_0013")
    assert {"patient_kin", "detect_staff_kin"} <= table_names(engine)
    assert "step_up_us" in session_columns()
    indexes = {index["name"] for index in inspect(engine).get_indexes("patient_kin")}
    assert {"ix_patient_kin_patient", "ix_patient_kin_token"} <= indexes
    downgrade("records", engine, BEFORE)
    assert not {"patient_kin", "detect_staff_kin"} & table_names(engine)
    assert "step_up_us" not in session_columns()
