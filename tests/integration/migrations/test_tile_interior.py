"""records_0003 and keys_0003: ledger tiles gain their interior column, on SQLite and
PostgreSQL, and lose it again on downgrade; earlier revisions keep their own shape."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from carevault.config import Settings
from carevault.db import make_engine
from carevault.migrations import downgrade, upgrade

# Each test takes its stores through the migrations itself, from nothing.
pytestmark = pytest.mark.fresh_home


@pytest.mark.parametrize(
    ("store", "table", "before"),
    [("records", "audit_tile", "records_0002"), ("keys", "unwrap_tile", "keys_0002")],
)
def test_the_interior_column_comes_and_goes_with_its_revision(
    settings: Settings, store: str, table: str, before: str
) -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)

    def columns() -> set[str]:
        return {column["name"] for column in inspect(engine).get_columns(table)}

    try:
        upgrade(store, engine, before)
        assert "interior" not in columns()
        assert {"ledger", "level", "tile_index", "width", "hashes"} <= columns()
        upgrade(store, engine)
        assert "interior" in columns()
        downgrade(store, engine, before)
        assert columns() == {"ledger", "level", "tile_index", "width", "hashes"}
        upgrade(store, engine)
        assert "interior" in columns()
    finally:
        engine.dispose()
