"""What the stores hold, to show that a refused request changed nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import MetaData, select

from carevault.bootstrap import Services


def snapshot(services: Services) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table in the records store and the key store, sorted."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    for label, engine in (("records", services.engine), ("keys", services.key_engine)):
        reflected = MetaData()
        reflected.reflect(engine)
        with engine.connect() as connection:
            for table in reflected.sorted_tables:
                rows = connection.execute(select(table)).all()
                found[f"{label}.{table.name}"] = sorted((tuple(row) for row in rows), key=repr)
    return found
