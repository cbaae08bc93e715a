"""records_0038: care relationships and registrations gain a seal; rows written before
keep none (the first start after the upgrade seals them, ``bootstrap._begin_sealing``); the
column comes and goes. SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from carevault.migrations import downgrade, upgrade
from carevault.migrations.records.versions import r0038_care_seal
from tests.integration.migrations.conftest import column_names

pytestmark = [pytest.mark.fresh_home, pytest.mark.postgres]

REVISION = r0038_care_seal.revision
BEFORE = r0038_care_seal.down_revision


def test_rows_written_before_keep_no_seal_and_the_column_comes_and_goes(
    engine: Engine,
) -> None:
    upgrade("records", engine, BEFORE)
    assert "seal" not in column_names(engine, "patient_registration")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO patient_registration (patient_pseudonym, clinic_id, registered_us,"
                " registered_by, proof) VALUES ('ps-1', 'clinic-tm', 1, 'staff:desk', 'hkid')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO care_relationship (patient_pseudonym, clinic_id, source_row_id,"
                " valid_from_us, valid_until_us) VALUES ('ps-1', 'clinic-tm', 7, 1, 2)"
            )
        )
    upgrade("records", engine, REVISION)
    for table in ("patient_registration", "care_relationship"):
        assert "seal" in column_names(engine, table)
        with engine.connect() as connection:
            seal = connection.execute(text(f"SELECT seal FROM {table}")).scalar_one()  # noqa: S608 - a fixed name
            assert seal is None
    downgrade("records", engine, BEFORE)
    for table in ("patient_registration", "care_relationship"):
        assert "seal" not in column_names(engine, table)
        with engine.connect() as connection:
            pseudonym = connection.execute(
                text(f"SELECT patient_pseudonym FROM {table}")  # noqa: S608 - a fixed name
            ).scalar_one()
            assert pseudonym == "ps-1"
