"""What the stores hold, to show that a refused request changed nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import MetaData, select

from carevault.bootstrap import Services

#: The ledgers grow on every request, refused or not (a refusal is recorded too).
LEDGER_PREFIXES = ("audit_", "unwrap_")


def snapshot(services: Services) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table in the records store and the key store, sorted; the
    append-only ledgers are left out (they record the refusal itself)."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    for label, engine in (("records", services.engine), ("keys", services.key_engine)):
        reflected = MetaData()
        reflected.reflect(engine)
        with engine.connect() as connection:
            for table in reflected.sorted_tables:
                if table.name.startswith(LEDGER_PREFIXES):
                    continue
                rows = connection.execute(select(table)).all()
                found[f"{label}.{table.name}"] = sorted((tuple(row) for row in rows), key=repr)
    return found
