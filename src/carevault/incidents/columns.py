"""Ledger entries as columns: what the scope engine reads, derived from the entry bytes.

Each row keeps the entry's RFC 6962 leaf hash, so a row can be tied to the tree (and a
segment's rows to the subtree the ledger holds for them).
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import sha256
from typing import Any

import orjson
import pyarrow as pa

_TEXT = pa.string()
_LIST = pa.list_(pa.string())

AUDIT_SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("at_us", pa.int64()),
        ("tag", _TEXT),
        ("outcome", _TEXT),
        ("principal", _TEXT),
        ("role", _TEXT),
        ("client_id", _TEXT),
        ("session_id", _TEXT),
        ("source_address", _TEXT),
        ("resource_type", _TEXT),
        ("patient", _TEXT),
        ("categories", _LIST),
        ("clinic_ids", _LIST),
        ("leaf", pa.binary(32)),
    ]
)

UNWRAP_SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("at_us", pa.int64()),
        ("principal", _TEXT),
        ("key_id", _TEXT),
        ("purpose", _TEXT),
        ("leaf", pa.binary(32)),
    ]
)

SCHEMAS = {"audit": AUDIT_SCHEMA, "unwrap": UNWRAP_SCHEMA}

_AUDIT_FIELDS = (
    ("tag", "tag"),
    ("outcome", "outcome"),
    ("principal", "principal"),
    ("role", "role"),
    ("client_id", "client_id"),
    ("session_id", "session_id"),
    ("source_address", "source_address"),
    ("resource_type", "resource_type"),
    ("patient", "patient_pseudonym"),
)
_UNWRAP_FIELDS = (("principal", "principal"), ("key_id", "key_id"), ("purpose", "purpose"))


def leaf(data: bytes) -> bytes:
    return sha256(b"\x00" + data).digest()


def to_table(ledger: str, rows: Sequence[tuple[int, bytes]]) -> pa.Table:
    """Rows (seq, canonical bytes) of ``ledger`` ("audit" or "unwrap") as an Arrow table."""
    fields = _AUDIT_FIELDS if ledger == "audit" else _UNWRAP_FIELDS
    columns: dict[str, list[Any]] = {name: [] for name in SCHEMAS[ledger].names}
    lists = ("categories", "clinic_ids") if ledger == "audit" else ()
    for seq, raw in rows:
        data = raw if type(raw) is bytes else bytes(raw)
        document = orjson.loads(data)
        columns["seq"].append(int(seq))
        columns["at_us"].append(int(document["at_us"]))
        for column, key in fields:
            columns[column].append(document.get(key))
        for column in lists:
            columns[column].append(document.get(column) or [])
        columns["leaf"].append(leaf(data))
    return pa.Table.from_pydict(columns, schema=SCHEMAS[ledger])
