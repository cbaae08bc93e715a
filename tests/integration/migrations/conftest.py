"""What every migration test starts from: an engine on a store that no migration has
touched yet (the tests are ``fresh_home``), disposed of afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, inspect

from carevault.config import Settings
from carevault.db import make_engine


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    settings.home.mkdir(parents=True, exist_ok=True)
    made = make_engine(settings.resolved_database_url)
    yield made
    made.dispose()


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def column_names(engine: Engine, table: str) -> set[str]:
    return {column["name"] for column in inspect(engine).get_columns(table)}
