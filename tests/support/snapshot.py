"""What the stores hold, to show that a refused request changed nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, MetaData, Table, inspect, select, text

from carevault.bootstrap import Services
from carevault.migrations import STORES

#: The ledgers grow on every request, refused or not (a refusal is recorded too).
LEDGER_PREFIXES = ("audit_", "unwrap_")

#: Reflected tables by dialect, table names and schema revision: reflecting a store costs
#: about half a second, and most tests snapshot stores of the same (newest) schema.
_reflected: dict[tuple[str, tuple[str, ...], tuple[str, ...]], list[Table]] = {}


def snapshot(services: Services) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table in the records store and the key store, sorted; the
    append-only ledgers are left out (they record the refusal itself)."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    for label, engine in (("records", services.engine), ("keys", services.key_engine)):
        with engine.connect() as connection:
            for table in _tables(engine):
                if table.name.startswith(LEDGER_PREFIXES):
                    continue
                rows = connection.execute(select(table)).all()
                found[f"{label}.{table.name}"] = sorted((tuple(row) for row in rows), key=repr)
    return found


def _tables(engine: Engine) -> list[Table]:
    names = tuple(sorted(inspect(engine).get_table_names()))
    with engine.connect() as connection:
        revisions = tuple(
            sorted(
                str(row[0])
                for version_table in STORES.values()
                if version_table in names
                for row in connection.execute(text(f"SELECT version_num FROM {version_table}"))
            )
        )
    key = (engine.dialect.name, names, revisions)
    if key not in _reflected:
        reflected = MetaData()
        reflected.reflect(engine)
        _reflected[key] = list(reflected.sorted_tables)
    return _reflected[key]
