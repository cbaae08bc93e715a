"""PostgreSQL schemas for module-scoped fixtures (tests/conftest.py has the per-test one)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


@contextmanager
def module_schema(database: str) -> Iterator[str]:
    """A schema of its own in the run's PostgreSQL database, for a module-scoped fixture
    (a module that seeds once for all its tests); yields a URL that uses it."""
    schema = f"t_{secrets.token_hex(6)}"
    engine = create_engine(database, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield (
            make_url(database)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with engine.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()
