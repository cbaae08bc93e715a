"""Schema migrations (Alembic), one history per store.

The records store and the key store are separate databases with SQLite and may
share one with PostgreSQL, so each keeps its own version table.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, column, select, table
from sqlalchemy.exc import OperationalError, ProgrammingError

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported when a migration runs, not with this module: every CLI command and
# server start imports the bootstrap, and only `migrate` and set-up ever upgrade a store
# (importing Alembic costs 0.2-0.4 s).

_HERE = Path(__file__).parent

STORES = {
    "records": "alembic_version",
    "keys": "alembic_version_keys",
}


def _config(store: str, engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_HERE / store))
    config.attributes["engine"] = engine
    config.attributes["version_table"] = STORES[store]
    return config


#: Each store's head revisions, read from its scripts once per process.
_heads: dict[str, frozenset[str]] = {}


def _head(store: str, engine: Engine) -> frozenset[str]:
    if store not in _heads:
        from alembic.script import ScriptDirectory

        script = ScriptDirectory.from_config(_config(store, engine))
        _heads[store] = frozenset(script.get_heads())
    return _heads[store]


def _current(store: str, engine: Engine) -> frozenset[str]:
    """The revisions ``store``'s version table holds (none where there is no table yet)."""
    versions = table(STORES[store], column("version_num"))
    try:
        with engine.connect() as connection:
            return frozenset(connection.execute(select(versions.c.version_num)).scalars())
    except (OperationalError, ProgrammingError):
        return frozenset()


def upgrade(store: str, engine: Engine, revision: str = "head") -> None:
    """Bring ``store`` on ``engine`` to ``revision``.

    A store already at the head is left alone after one query: every process that opens
    the services with ``migrate`` asks (each test, set-up, the CLI's migrating commands),
    and Alembic's own way loads every migration script again each time to learn that
    there is nothing to do (about 10 ms a store)."""
    if revision == "head" and _current(store, engine) == _head(store, engine):
        return
    from alembic import command

    command.upgrade(_config(store, engine), revision)


def downgrade(store: str, engine: Engine, revision: str) -> None:
    """Take ``store`` on ``engine`` back to ``revision``."""
    from alembic import command

    command.downgrade(_config(store, engine), revision)
