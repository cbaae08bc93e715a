"""records_0011: the clear dates of directory resources come with their revision and go
on downgrade, on SQLite and PostgreSQL; rows written before are filled by reindexing
(tests/integration/rest/test_search_ranges.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, inspect

from carevault.migrations import downgrade, upgrade
from carevault.migrations.records.versions import r0011_search_dates
from tests.integration.migrations.conftest import table_names

# Each test takes its stores through the migrations itself, from nothing.
pytestmark = pytest.mark.fresh_home

BEFORE = r0011_search_dates.down_revision


def test_search_dates_come_and_go_with_records_0011(engine: Engine) -> None:
    upgrade("records", engine, BEFORE)
    assert "search_date" not in table_names(engine)
    upgrade("records", engine, "records_0011")
    assert "search_date" in table_names(engine)
    indexes = {index["name"] for index in inspect(engine).get_indexes("search_date")}
    assert {"ix_search_date_row", "ix_search_date_low", "ix_search_date_high"} <= indexes
    downgrade("records", engine, BEFORE)
    assert "search_date" not in table_names(engine)
