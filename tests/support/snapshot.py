"""What the stores hold, to show that a refused request changed nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, MetaData, Table, inspect, select, text

from carevault.bootstrap import Services
from carevault.migrations import STORES

#: The ledgers grow on every request, refused or not (a refusal is recorded too).
LEDGER_PREFIXES = ("audit_", "unwrap_")

#: Reflected tables by dialect, table names and schema revision: reflecting a store costs
#: about half a second, and most tests snapshot stores of the same (newest) schema.
_reflected: dict[tuple[str, tuple[str, ...], tuple[str, ...]], list[Table]] = {}


def snapshot(services: Services) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table in the records store and the key store, sorted; the
    append-only ledgers are left out (they record the refusal itself). Stores that share
    one database (PostgreSQL's default) are read once."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    read: set[str] = set()
    for label, engine in (("records", services.engine), ("keys", services.key_engine)):
        url = engine.url.render_as_string(hide_password=False)
        if url in read:
            continue
        read.add(url)
        with engine.connect() as connection:
            tables = [t for t in _tables(engine) if not t.name.startswith(LEDGER_PREFIXES)]
            rows = _rows(connection, tables)
        for table in tables:
            found[f"{label}.{table.name}"] = sorted(rows.get(table.name, []), key=repr)
    return found


def _rows(connection: Connection, tables: list[Table]) -> dict[str, list[tuple[Any, ...]]]:
    """Each table's rows: on PostgreSQL in one round trip (each row as its JSON text: a
    query a table cost a third of a second a snapshot, as long as the request tested)."""
    if connection.dialect.name != "postgresql":
        return {t.name: [tuple(row) for row in connection.execute(select(t))] for t in tables}
    union = " UNION ALL ".join(
        f"SELECT '{t.name}', row_to_json(r)::text FROM \"{t.name}\" r" for t in tables
    )
    found: dict[str, list[tuple[Any, ...]]] = {}
    for name, row in connection.exec_driver_sql(union):
        found.setdefault(name, []).append((row,))
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
