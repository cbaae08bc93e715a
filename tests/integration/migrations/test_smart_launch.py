"""records_0010: the nonce, the picker's state and the patient in context come and go
with their revision, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from carevault.config import Settings
from carevault.db import make_engine
from carevault.migrations import downgrade, upgrade

# Each test takes its stores through the migrations itself, from nothing.
pytestmark = pytest.mark.fresh_home

BEFORE = "records_0009"
CODE_COLUMNS = {"nonce", "launch_state", "patient_id", "patient_pseudonym"}
SESSION_COLUMNS = {"patient_id", "patient_pseudonym"}


def test_launch_columns_come_and_go_with_records_0010(settings: Settings) -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)

    def shape() -> tuple[set[str], set[str]]:
        found = inspect(engine)
        return (
            {column["name"] for column in found.get_columns("auth_code")},
            {column["name"] for column in found.get_columns("auth_session")},
        )

    try:
        upgrade("records", engine, BEFORE)
        code, session = shape()
        assert not (code & CODE_COLUMNS) and not (session & SESSION_COLUMNS)
        upgrade("records", engine, "records_0010")
        code, session = shape()
        assert code >= CODE_COLUMNS and session >= SESSION_COLUMNS
        downgrade("records", engine, BEFORE)
        code, session = shape()
        assert not (code & CODE_COLUMNS) and not (session & SESSION_COLUMNS)
        upgrade("records", engine, "records_0010")
        assert shape()[0] >= CODE_COLUMNS
    finally:
        engine.dispose()
