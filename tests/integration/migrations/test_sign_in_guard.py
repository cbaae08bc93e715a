"""records_0006: the sign-in throttle and recovery codes come with their revision, and a
client app gains the integration account it acts for; all of it goes again on downgrade,
on SQLite and PostgreSQL. A fresh database built from the first revision gets the same."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from carevault.config import Settings
from carevault.db import make_engine
from carevault.migrations import downgrade, upgrade

BEFORE = "records_0005"

# Each test takes its stores through the migrations itself, from nothing.
pytestmark = pytest.mark.fresh_home


def test_the_throttle_recovery_codes_and_the_binding_come_and_go_with_records_0006(
    settings: Settings,
) -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)

    def shape() -> tuple[set[str], set[str]]:
        found = inspect(engine)
        tables = set(found.get_table_names())
        return tables, {column["name"] for column in found.get_columns("client_app")}

    try:
        upgrade("records", engine, BEFORE)
        tables, client_columns = shape()
        assert "sign_in_throttle" not in tables and "recovery_code" not in tables
        assert "account_id" not in client_columns
        upgrade("records", engine, "records_0006")
        tables, client_columns = shape()
        assert {"sign_in_throttle", "recovery_code"} <= tables
        assert "account_id" in client_columns
        downgrade("records", engine, BEFORE)
        tables, client_columns = shape()
        assert "sign_in_throttle" not in tables and "account_id" not in client_columns
        upgrade("records", engine, "records_0006")
        assert "account_id" in shape()[1]
    finally:
        engine.dispose()
