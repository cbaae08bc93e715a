"""Alembic environment for the records store; the engine comes from the caller."""

from __future__ import annotations

from alembic import context

import carevault.vault.tables  # noqa: F401 - registers the tables
from carevault.db import metadata as target_metadata

config = context.config
engine = config.attributes["engine"]
version_table = config.attributes["version_table"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=version_table,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
