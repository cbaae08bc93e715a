"""Schema migrations (Alembic), one history per store.

The records store and the key store are separate databases with SQLite and may
share one with PostgreSQL, so each keeps its own version table.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

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


def upgrade(store: str, engine: Engine, revision: str = "head") -> None:
    """Bring ``store`` on ``engine`` to ``revision``."""
    from alembic import command

    command.upgrade(_config(store, engine), revision)


def downgrade(store: str, engine: Engine, revision: str) -> None:
    """Take ``store`` on ``engine`` back to ``revision``."""
    from alembic import command

    command.downgrade(_config(store, engine), revision)
