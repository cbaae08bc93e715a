"""records_0033: staff accounts gain a seal; accounts written before keep none (the
first start after the upgrade seals them, ``bootstrap._begin_sealing``); the column
comes and goes. SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from carevault.migrations import downgrade, upgrade
from carevault.migrations.records.versions import r0033_account_seal
from tests.integration.migrations.conftest import column_names

pytestmark = [pytest.mark.fresh_home, pytest.mark.postgres]

REVISION = r0033_account_seal.revision
BEFORE = r0033_account_seal.down_revision


def test_accounts_written_before_keep_no_seal_and_the_column_comes_and_goes(
    engine: Engine,
) -> None:
    upgrade("records", engine, BEFORE)
    assert "seal" not in column_names(engine, "staff_account")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO staff_account (account_id, username, display_name, role,"
                " clinic_ids, password_hash, failed_count, next_attempt_us, locked_until_us,"
                " password_changed_us, created_us) VALUES ('st-1', 'desk', 'Desk',"
                " 'front_desk', 'clinic-tm', 'x', 0, 0, 0, 1, 1)"
            )
        )
    upgrade("records", engine, REVISION)
    assert "seal" in column_names(engine, "staff_account")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT seal FROM staff_account")).scalar_one() is None
    downgrade("records", engine, BEFORE)
    assert "seal" not in column_names(engine, "staff_account")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT username FROM staff_account")).scalar_one() == (
            "desk"
        )
