"""records_0041: an authorization code keeps the scopes as the app asked for them; codes
made before keep theirs with none, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from carevault.migrations import downgrade, upgrade
from carevault.migrations.records.versions import r0041_code_asked_scope
from tests.integration.migrations.conftest import column_names

pytestmark = [pytest.mark.fresh_home, pytest.mark.postgres]

REVISION = r0041_code_asked_scope.revision
BEFORE = r0041_code_asked_scope.down_revision


def test_codes_made_before_keep_what_they_open_and_ask_nothing(engine: Engine) -> None:
    upgrade("records", engine, REVISION)
    downgrade("records", engine, BEFORE)
    assert "asked_scope" not in column_names(engine, "auth_code")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO auth_code (code_hash, client_id, account_id, redirect_uri,"
                " code_challenge, scopes, expires_us) VALUES ('c1', 'app', 'acc-1',"
                " 'http://127.0.0.1/cb', 'x', 'openid user/*.rs', 99)"
            )
        )
    upgrade("records", engine, REVISION)
    assert "asked_scope" in column_names(engine, "auth_code")
    with engine.connect() as connection:
        row = connection.execute(text("SELECT scopes, asked_scope FROM auth_code")).one()
    assert tuple(row) == ("openid user/*.rs", None)
