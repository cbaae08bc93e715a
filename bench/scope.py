"""Incident scope over a year of ledger: DuckDB over Parquet segments against plain SQL on
PostgreSQL (the baseline), for a week's window and for the whole year.

    python -m bench.scope                      # 15M entries (the demo group's year), 150M
    python -m bench.scope --entries 3000000 --large 30000000 --pg-entries 3000000
    python -m bench.scope --quick              # a smoke run: 200k / 1M entries

Entries are generated vectorised (numpy, pyarrow), never through Python loops per row,
shaped as the gate writes them: reads, searches and $everything by ~400 staff over
~50,000 patients (a hospital network: 8,000 staff, 2,000,000 patients), a compromised
account ("staff:thief") among them reading ~150 records a day. The Parquet files are
the segments the scope reads (65,536 entries each, the engine's own schema and reader,
each file's SHA-256 checked before it is read, as a scope does). PostgreSQL holds the
same entries as canonical JSON in a table shaped as the ledger's ``audit_entry``, with
its indexes, and answers the same questions in plain SQL.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import Engine, text

from bench.common import Table, now, ratio, write_results
from bench.ledger_workload import PG_ADMIN_URL, postgres_database
from carevault.db import make_engine
from carevault.incidents.columns import AUDIT_SCHEMA
from carevault.incidents.query import DuckScope, Hit, SqlScope, Who, Window, empty
from carevault.incidents.segments import file_digest
from carevault.ledger.schema import audit_tables
from carevault.ledger.unwrap import unwrap_tables

EPOCH_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
DAY_US = 86_400 * 1_000_000
YEAR_DAYS = 365
SEGMENT = 65_536
THIEF = "staff:thief"
THIEF_PER_DAY = 150
TAGS = ["fhir:resource:read", "fhir:resource:search", "fhir:patient:everything",
        "fhir:resource:create", "auth:session:signed-in"]  # fmt: skip
TAG_WEIGHTS = [0.62, 0.2, 0.03, 0.13, 0.02]
COMBOS = [
    ["identity", "contact", "demographic", "visit"],
    ["clinical"],
    ["visit"],
    ["medication"],
    ["clinical", "sensitive_clinical"],
    ["identity", "financial"],
]
RESOURCES = ["Patient", "Observation", "Encounter", "MedicationRequest", "Condition", "Claim"]
CLINICS = [f"clinic-{n:02d}" for n in range(12)]


class Shape:
    """How big the organisation is: staff and patients."""

    def __init__(self, staff: int, patients: int) -> None:
        self.staff = staff
        self.patients = patients
        self.principals = pa.array([f"staff:s{n:05d}" for n in range(staff)] + [THIEF])


def _coded(codes: np.ndarray, names: pa.Array, mask: np.ndarray | None = None) -> pa.Array:
    """A dictionary-encoded text column over a small, fixed list of values."""
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32), mask=mask), names)


def _numbered(prefix: str, numbers: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """Texts like ``pt1000000000012345``, formatted by Arrow rather than Python."""
    digits = pc.cast(pa.array(numbers + 10**15, mask=mask), pa.string())
    return pc.binary_join_element_wise(prefix, digits, "")


def _chunk(shape: Shape, first: int, count: int, total: int, rng: np.random.Generator) -> pa.Table:
    """Entries [first, first + count) of a ``total``-entry year, as the segments hold them."""
    seq = np.arange(first, first + count, dtype=np.int64)
    at_us = EPOCH_US + (seq * (YEAR_DAYS * DAY_US // total)).astype(np.int64)
    thief_share = THIEF_PER_DAY * YEAR_DAYS / total
    who = rng.integers(0, shape.staff, count)
    who[rng.random(count) < thief_share] = shape.staff
    tag = rng.choice(len(TAGS), count, p=TAG_WEIGHTS)
    combo = rng.integers(0, len(COMBOS), count)
    no_patient = tag == TAGS.index("auth:session:signed-in")
    day = (at_us - EPOCH_US) // DAY_US
    columns = [
        pa.array(seq),
        pa.array(at_us),
        _coded(tag, _TAG_NAMES),
        _coded((rng.random(count) >= 0.98), _OUTCOMES),
        _coded(who, shape.principals),
        _coded(who == shape.staff, _ROLES),
        _coded(np.zeros(count, dtype=np.int64), _CLIENTS),
        _numbered("se", who * 1000 + day),
        _coded(who % 250, _ADDRESSES),
        _coded(combo, _RESOURCE_NAMES),
        _numbered("pt", rng.integers(0, shape.patients, count), mask=no_patient),
        _COMBOS.take(pa.array(combo)),
        _CLINIC_LISTS.take(pa.array(who % len(CLINICS))),
        pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(32), count, [None, pa.py_buffer(rng.bytes(32 * count))]
        ),
    ]
    return pa.Table.from_arrays(columns, names=AUDIT_SCHEMA.names)


_TAG_NAMES = pa.array(TAGS)
_OUTCOMES = pa.array(["success", "denied"])
_ROLES = pa.array(["nurse", "physician"])
_CLIENTS = pa.array(["clinic-desk"])
_ADDRESSES = pa.array([f"10.0.{n // 50}.{n % 50}" for n in range(250)])
_RESOURCE_NAMES = pa.array(RESOURCES)
_COMBOS = pa.array(COMBOS, type=pa.list_(pa.string()))
_CLINIC_LISTS = pa.array([[clinic] for clinic in CLINICS], type=pa.list_(pa.string()))


def write_segments(shape: Shape, total: int, directory: Path, seed: int) -> list[Path]:
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for first in range(0, total, SEGMENT):
        table = _chunk(shape, first, min(SEGMENT, total - first), total, rng)
        path = directory / f"audit-{first:012d}.parquet"
        pq.write_table(table, path, compression="zstd", row_group_size=SEGMENT)
        paths.append(path)
    return paths


def _json_rows(table: pa.Table) -> Iterator[tuple[Any, ...]]:
    """Canonical JSON (sorted keys, compact), as ``AuditEvent.canonical`` writes it."""
    columns = {name: table.column(name).to_pylist() for name in table.column_names}
    for n in range(table.num_rows):
        patient = columns["patient"][n]
        parts = [f'"at_us":{columns["at_us"][n]}']
        cats = ",".join(f'"{c}"' for c in columns["categories"][n])
        parts.append(f'"categories":[{cats}]')
        parts.append(f'"client_id":"{columns["client_id"][n]}"')
        parts.append(f'"clinic_ids":["{columns["clinic_ids"][n][0]}"]')
        parts.append(f'"outcome":"{columns["outcome"][n]}"')
        if patient is not None:
            parts.append(f'"patient_pseudonym":"{patient}"')
        parts.append(f'"principal":"{columns["principal"][n]}"')
        parts.append(f'"resource_type":"{columns["resource_type"][n]}"')
        parts.append(f'"role":"{columns["role"][n]}"')
        parts.append(f'"session_id":"{columns["session_id"][n]}"')
        parts.append(f'"source_address":"{columns["source_address"][n]}"')
        parts.append(f'"tag":"{columns["tag"][n]}","v":1')
        entry = ("{" + ",".join(parts) + "}").encode()
        yield ("audit", columns["seq"][n], columns["at_us"][n], patient,
               columns["principal"][n], entry)  # fmt: skip


def load_postgres(engine: Engine, paths: list[Path]) -> None:
    """The same entries in tables shaped as the ledgers', indexes built after the load."""
    audit_tables.entry.create(engine)
    unwrap_tables.entry.create(engine)
    indexes = list(audit_tables.entry.indexes)
    with engine.begin() as connection:
        for index in indexes:
            connection.execute(text(f"DROP INDEX IF EXISTS {index.name}"))
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for path in paths:
            with cursor.copy(
                "COPY audit_entry (ledger, seq, at_us, subject, actor, entry) FROM STDIN"
            ) as copy:
                for row in _json_rows(pq.read_table(path)):
                    copy.write_row(row)
        raw.commit()
    finally:
        raw.close()
    for index in indexes:
        index.create(engine)
    with engine.begin() as connection:
        connection.execute(text("ANALYZE audit_entry"))


def duck_scope(paths: list[Path], window: Window) -> list[Hit]:
    """As a scope does: check each segment the window meets, then query."""
    files = [path for path in paths if _meets(path, window)]
    for path in files:
        file_digest(path)
    query = DuckScope(window, {"audit": (files, empty("audit")), "unwrap": ([], empty("unwrap"))})
    try:
        return query.released(Who(principals=(THIEF,)))
    finally:
        query.close()


_SPANS: dict[Path, tuple[int, int]] = {}


def _meets(path: Path, window: Window) -> bool:
    low, high = _SPANS[path]
    return high >= window.since_us and low < window.end


def sql_scope(engine: Engine, window: Window) -> list[Hit]:
    return SqlScope(engine, engine, window).released(Who(principals=(THIEF,)))


def _timed(call: Any, *args: Any) -> tuple[float, list[Hit]]:
    started = time.perf_counter()
    hits = call(*args)
    return time.perf_counter() - started, hits


def _windows() -> dict[str, Window]:
    week_start = EPOCH_US + 180 * DAY_US
    return {
        "week": Window(week_start, week_start + 7 * DAY_US),
        "year": Window(EPOCH_US, EPOCH_US + YEAR_DAYS * DAY_US),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=15_000_000, help="the group's year")
    parser.add_argument("--large", type=int, default=150_000_000, help="a network's year")
    parser.add_argument("--pg-entries", type=int, default=None, help="PostgreSQL's copy")
    parser.add_argument("--pg-url", default=PG_ADMIN_URL)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--dir", type=Path, default=None, help="where the Parquet goes")
    args = parser.parse_args()
    if args.quick:
        args.entries, args.large = 200_000, 1_000_000
    pg_entries = args.pg_entries or args.entries
    started = now()
    results: list[dict[str, Any]] = []
    table = Table(
        "Incident scope: a compromised account over a week and a year",
        ["ledger", "window", "engine", "entries", "patients found", "seconds", "vs SQL"],
    )
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        sizes = [("group", args.entries, Shape(400, 50_000)),
                 ("network", args.large, Shape(8_000, 2_000_000))]  # fmt: skip
        for label, total, shape in sizes:
            if total <= 0:
                continue
            t0 = time.perf_counter()
            paths = write_segments(shape, total, Path(scratch) / label, seed=len(label))
            for path in paths:
                at = pq.read_table(path, columns=["at_us"]).column("at_us")
                _SPANS[path] = (int(at[0].as_py()), int(at[-1].as_py()))
            generated = time.perf_counter() - t0
            table.notes.append(
                f"{label}: {total:,} entries generated as Parquet in {generated:.0f} s"
            )
            baseline: dict[str, float] = {}
            engine = None
            with _Postgres(args, label, pg_entries, total) as url:
                if url is not None:
                    engine = make_engine(url)
                    t0 = time.perf_counter()
                    load_postgres(engine, paths)
                    table.notes.append(
                        f"{label}: PostgreSQL loaded in {time.perf_counter() - t0:.0f} s"
                    )
                for name, window in _windows().items():
                    if engine is not None:
                        seconds, sql_hits = _timed(sql_scope, engine, window)
                        baseline[name] = seconds
                        table.add(label, name, "PostgreSQL SQL", total, len(sql_hits), seconds, 1.0)
                        results.append({"ledger": label, "window": name, "engine": "sql",
                                        "entries": total, "seconds": seconds})  # fmt: skip
                    seconds, hits = _timed(duck_scope, paths, window)
                    speedup = ratio(baseline[name], seconds) if name in baseline else float("nan")
                    table.add(label, name, "DuckDB/Parquet", total, len(hits), seconds, speedup)
                    results.append({"ledger": label, "window": name, "engine": "duckdb",
                                    "entries": total, "seconds": seconds,
                                    "patients": len(hits)})  # fmt: skip
                    print(" | ".join(table.rows[-1]), flush=True)
                    if engine is not None:
                        same = {h.patient: sorted(h.positions) for h in hits} == {
                            h.patient: sorted(h.positions) for h in sql_hits
                        }
                        assert same, f"the engines disagree on {label}/{name}"  # noqa: S101
                if engine is not None:
                    engine.dispose()
    table.notes.append("vs SQL: how many times faster than plain SQL on PostgreSQL, same run")
    table.notes.append("targets: group year < 5 s, network year < 60 s (DuckDB)")
    print(table.render())
    write_results(
        "scope",
        quick=args.quick,
        settings={"entries": args.entries, "large": args.large, "pg_entries": pg_entries},
        results=results,
        tables=[table],
        summary={
            r["ledger"] + "/" + r["window"] + "/" + r["engine"]: r["seconds"] for r in results
        },  # fmt: skip
        started=started,
    )


class _Postgres:
    """A scratch PostgreSQL database for the sizes PostgreSQL is asked to hold."""

    def __init__(self, args: argparse.Namespace, label: str, pg_entries: int, total: int):
        self.use = not args.no_postgres and total <= pg_entries
        self.url = args.pg_url
        self.manager: Any = None

    def __enter__(self) -> str | None:
        if not self.use:
            return None
        self.manager = postgres_database(self.url)
        return str(self.manager.__enter__())

    def __exit__(self, *exc: object) -> None:
        if self.manager is not None:
            self.manager.__exit__(*exc)


if __name__ == "__main__":
    main()
