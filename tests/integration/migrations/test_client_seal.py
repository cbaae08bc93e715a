"""records_0037: client apps gain a seal; apps registered before keep none (the first
start after the upgrade seals them, ``bootstrap._begin_sealing``); the column comes and
goes. SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from carevault.migrations import downgrade, upgrade
from carevault.migrations.records.versions import r0037_client_seal
from tests.integration.migrations.conftest import column_names

pytestmark = [pytest.mark.fresh_home, pytest.mark.postgres]

REVISION = r0037_client_seal.revision
BEFORE = r0037_client_seal.down_revision


def test_apps_registered_before_keep_no_seal_and_the_column_comes_and_goes(
    engine: Engine,
) -> None:
    upgrade("records", engine, BEFORE)
    assert "seal" not in column_names(engine, "client_app")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO client_app (client_id, name, kind, secret_hash, redirect_uris,"
                " scopes, clinic_ids, created_us) VALUES ('lab-feed', 'Lab', 'confidential',"
                " 'x', '[]', 'system/Patient.rs', 'clinic-tm', 1)"
            )
        )
    upgrade("records", engine, REVISION)
    assert "seal" in column_names(engine, "client_app")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT seal FROM client_app")).scalar_one() is None
    downgrade("records", engine, BEFORE)
    assert "seal" not in column_names(engine, "client_app")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT client_id FROM client_app")).scalar_one() == (
            "lab-feed"
        )
