"""Incident scope over a year of ledger: DuckDB over sealed Parquet segments against plain
SQL on PostgreSQL (the baseline), for a week's window and for the whole year.

    python -m bench.scope                      # 15M entries (the demo group's year), 150M
    python -m bench.scope --entries 3000000 --large 30000000
    python -m bench.scope --quick              # a smoke run: 200k / 1M entries

What is timed is ``scope_document``, the function ``carevault incident scope`` calls, on
a real data directory (``build_services``): it seals what is due, checks every segment
the window meets (manifest row against its seal entry in the audit ledger, the tree's
hash for its entries against the sealed root, the file's SHA-256 against the sealed
digest), queries, builds the tiers and keeps the run. "cold" is a fresh process's
first scope (what the CLI pays: every file hashed in full); "warm" is the same scope
again in that process (what a server pays the second time: files whose identity did not
change are not hashed again). The PostgreSQL rows are the same function with
``engine="sql"``.

The ledger is generated, vectorised (numpy, pyarrow; DuckDB for PostgreSQL's copy),
never through Python loops per row: reads, searches and $everything by ~400 staff over
~50,000 patients (a hospital network: 8,000 staff, 2,000,000 patients), a compromised
account ("staff:thief") among them reading ~150 records a day. Each 65,536 entries are
written as a segment file by the sealer's own writer, and sealed through its own seal
record (seal entry in the audit ledger + manifest row). The ledger's tiles from level 2
up (one hash per segment: the RFC 6962 root of the segment's leaf column) and its head
are written so that the tree is consistent and later appends, checkpoints and the
segment checks work on it; the leaf column holds random 32-byte values, not hashes of
entry bytes (the scope never reads them; ``incident segments --verify`` would refuse
these files), and levels 0-1 of the tiles are not written (no inclusion proofs here).
PostgreSQL (group size only) holds the same entries as canonical JSON in the ledger's
own ``audit_entry`` table, with its indexes.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bench.common import Table, now, ratio, write_results
from bench.ledger_workload import PG_ADMIN_URL, postgres_database
from carevault.bootstrap import Services, build_services
from carevault.config import Settings
from carevault.db import write_transaction
from carevault.incidents import Actor, declare_case, scope_document
from carevault.incidents.columns import AUDIT_SCHEMA
from carevault.incidents.scope import segments_for
from carevault.incidents.segments import Segment, Segments, merkle_root
from carevault.ledger import tree
from carevault.ledger.store import TILE_WIDTH, Levels, push

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


def _chunk(
    shape: Shape, first: int, count: int, total: int, rng: np.random.Generator
) -> tuple[pa.Table, bytes]:
    """Entries [first, first + count) of a ``total``-entry year, as the segments hold them,
    and their leaf column's bytes."""
    seq = np.arange(first, first + count, dtype=np.int64)
    at_us = EPOCH_US + (seq * (YEAR_DAYS * DAY_US // total)).astype(np.int64)
    thief_share = THIEF_PER_DAY * YEAR_DAYS / total
    who = rng.integers(0, shape.staff, count)
    who[rng.random(count) < thief_share] = shape.staff
    tag = rng.choice(len(TAGS), count, p=TAG_WEIGHTS)
    combo = rng.integers(0, len(COMBOS), count)
    no_patient = tag == TAGS.index("auth:session:signed-in")
    day = (at_us - EPOCH_US) // DAY_US
    leaves = rng.bytes(32 * count)
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
        pa.FixedSizeBinaryArray.from_buffers(pa.binary(32), count, [None, pa.py_buffer(leaves)]),
    ]
    return pa.Table.from_arrays(columns, names=AUDIT_SCHEMA.names), leaves


_TAG_NAMES = pa.array(TAGS)
_OUTCOMES = pa.array(["success", "denied"])
_ROLES = pa.array(["nurse", "physician"])
_CLIENTS = pa.array(["clinic-desk"])
_ADDRESSES = pa.array([f"10.0.{n // 50}.{n % 50}" for n in range(250)])
_RESOURCE_NAMES = pa.array(RESOURCES)
_COMBOS = pa.array(COMBOS, type=pa.list_(pa.string()))
_CLINIC_LISTS = pa.array([[clinic] for clinic in CLINICS], type=pa.list_(pa.string()))


def generate(shape: Shape, total: int, segments: Segments, seed: int) -> list[Segment]:
    """The year's segments, written by the sealer's writer; the sealed facts of each."""
    rng = np.random.default_rng(seed)
    size = segments.size
    if total % size:
        raise SystemExit(f"entries: a multiple of {size}")
    found = []
    for first in range(0, total, size):
        table, leaves = _chunk(shape, first, size, total, rng)
        name = f"audit-{first:012d}-{first + size:012d}.parquet"
        _, digest = segments.write(table, name)  # the sealer's own writer
        at = table.column("at_us")
        root = merkle_root([leaves[n : n + 32] for n in range(0, len(leaves), 32)])
        found.append(
            Segment("audit", first, first + size, name, digest, root.hex(),
                    table.num_rows, int(pc.min(at).as_py()), int(pc.max(at).as_py()), -1)
        )  # fmt: skip
    return found


def install_tree(services: Services, sealed: list[Segment], total: int) -> None:
    """Tiles from level 2 up over the segments' roots, and the head at ``total``: the
    tree the ledger would hold after appending the generated entries."""
    store = services.audit_ledger.store
    if store.head()[0] != 0:
        raise SystemExit("the audit ledger of a fresh data directory is not empty")
    tiles: dict[tuple[int, int], Levels] = {}
    counts = [0] * 8

    def add(level: int, value: bytes) -> None:
        levels = tiles.setdefault((level, counts[level] // TILE_WIDTH), [[]])
        push(levels, value)
        counts[level] += 1
        if len(levels[0]) == TILE_WIDTH:
            add(level + 1, levels[-1][0])

    for segment in sealed:
        add(2, bytes.fromhex(segment.root))
    with write_transaction(services.engine) as connection:
        for (level, index), levels in sorted(tiles.items()):
            store._save_tile(connection, level, index, levels)  # noqa: SLF001
        store.lock_head(connection)
        root = tree.tree_hash(total, store._reader(connection).read)  # noqa: SLF001
        connection.execute(
            store.tables.head.update()
            .where(store.tables.head.c.ledger == store.name)
            .values(size=total, root=root, updated_us=sealed[-1].max_at_us)
        )


def seal_all(segments: Segments, sealed: list[Segment]) -> None:
    for segment in sealed:
        if segments.record(segment, "system:bench") is None:
            raise SystemExit(f"{segment.file_name} was sealed twice")


_ENTRY_LINE = r"""
SELECT 'audit' || chr(9) || seq || chr(9) || at_us || chr(9) || coalesce(patient, '\N')
  || chr(9) || principal || chr(9) || '\\x' || hex(
  '{"at_us":' || at_us
  || ',"categories":['
  || array_to_string(list_transform(categories, lambda c: '"' || c || '"'), ',')
  || '],"client_id":"' || client_id
  || '","clinic_ids":['
  || array_to_string(list_transform(clinic_ids, lambda c: '"' || c || '"'), ',')
  || '],"outcome":"' || outcome || '"'
  || CASE WHEN patient IS NULL THEN '' ELSE ',"patient_pseudonym":"' || patient || '"' END
  || ',"principal":"' || principal || '","resource_type":"' || resource_type
  || '","role":"' || role || '","session_id":"' || session_id
  || '","source_address":"' || source_address || '","tag":"' || tag || '","v":1}'
  ) || chr(10) AS line
FROM read_parquet($file)
"""


def load_postgres(services: Services, files: list[Path]) -> None:
    """The same entries in the ledger's own ``audit_entry``, as canonical JSON (sorted
    keys, compact, as ``AuditEvent.canonical`` writes it), made by DuckDB and streamed
    to COPY; the secondary indexes are built after the load."""
    import duckdb

    table = services.audit_ledger.store.tables.entry
    indexes = list(table.indexes)
    with services.engine.begin() as connection:
        for index in indexes:
            index.drop(connection)
    # One segment at a time (each is in position order): a sort of the whole year would
    # hold every line in memory at once.
    duck = duckdb.connect(config={"memory_limit": "1GB", "threads": 1})
    raw = services.engine.raw_connection()
    try:
        cursor = raw.cursor()
        with cursor.copy(
            "COPY audit_entry (ledger, seq, at_us, subject, actor, entry) FROM STDIN"
        ) as copy:
            for file in files:
                lines = duck.sql(_ENTRY_LINE, params={"file": str(file)}).to_arrow_table()
                for chunk in lines.column(0).chunks:
                    ends = np.frombuffer(chunk.buffers()[1], dtype=np.int32)
                    ends = ends[chunk.offset : chunk.offset + len(chunk) + 1]
                    # The strings of a chunk lie end to end in its data buffer: one write.
                    copy.write(memoryview(chunk.buffers()[2])[int(ends[0]) : int(ends[-1])])
        raw.commit()
    finally:
        raw.close()
        duck.close()
    with services.engine.begin() as connection:
        for index in indexes:
            index.create(connection)
    with services.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("ANALYZE audit_entry")


def _windows() -> dict[str, tuple[str, str]]:
    def iso(us: int) -> str:
        return datetime.fromtimestamp(us / 1e6, UTC).isoformat()

    week_start = EPOCH_US + 180 * DAY_US
    return {
        "week": (iso(week_start), iso(week_start + 7 * DAY_US)),
        "year": (iso(EPOCH_US), iso(EPOCH_US + YEAR_DAYS * DAY_US)),
    }


def _settings(home: Path, url: str | None) -> Settings:
    return Settings(
        environment="test",
        home=home,
        database_url=url,
        keys_database_url=url,
        argon2_memory_kib=8192,
        argon2_time_cost=1,
        checkpoint_seconds=0,
        incident_segment_entries=SEGMENT,
    )


def _scope(services: Services, incident: int, engine: str) -> tuple[float, float, dict[str, Any]]:
    started, cpu = time.perf_counter(), time.process_time()
    document = scope_document(services, incident, engine=engine, actor=Actor("system:bench"))
    return time.perf_counter() - started, time.process_time() - cpu, document


def _evidence(document: dict[str, Any]) -> dict[str, list[int]]:
    return {line["patient"]: line["evidence"] for line in document["tiers"]["confirmed"]}


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--entries", type=int, default=15_007_744, help="the group's year")
    parser.add_argument("--large", type=int, default=150_011_904, help="a network's year")
    parser.add_argument("--pg-url", default=PG_ADMIN_URL)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--dir", type=Path, default=None, help="where the data directories go")
    parser.add_argument("--name", default="scope", help="results file stem (bench/results/)")
    args = parser.parse_args()
    if args.quick:
        args.entries, args.large = 4 * SEGMENT, 16 * SEGMENT
    started = now()
    results: list[dict[str, Any]] = []
    table = Table(
        "Incident scope (scope_document): a compromised account over a week and a year",
        ["ledger", "window", "engine", "entries", "patients", "seconds", "CPU s", "vs SQL",
         "load"],
    )  # fmt: skip
    sizes = [("group", args.entries, Shape(400, 50_000), not args.no_postgres),
             ("network", args.large, Shape(8_000, 2_000_000), False)]  # fmt: skip
    notes = [
        "vs SQL: PostgreSQL's seconds / this row's seconds, same run, same data",
        "CPU s: this process's CPU time (DuckDB's threads included; not the PostgreSQL server's)",
        "load: /proc/loadavg (1, 5, 15 min) when the row was measured; 2 cores",
        "targets (DuckDB, cold): group year < 5 s, network year < 60 s",
    ]

    def save() -> None:
        """Written after each size, so that a long run keeps what it measured."""
        saved = Table(table.title, table.headers)
        saved.rows, saved.notes = list(table.rows), [*table.notes, *notes]
        write_results(
            args.name,
            quick=args.quick,
            settings={
                "entries": args.entries,
                "large": args.large,
                "segment": SEGMENT,
                "postgres": not args.no_postgres,
            },  # fmt: skip
            results=results,
            tables=[saved],
            summary={f"{r['ledger']}/{r['window']}/{r['engine']}": r["seconds"] for r in results},
            started=started,
        )
        print(saved.render(), flush=True)

    for label, total, shape, with_pg in sizes:
        if total <= 0:
            continue
        with tempfile.TemporaryDirectory(dir=args.dir, prefix=f"scope-{label}-") as scratch:
            manager = postgres_database(args.pg_url) if with_pg else None
            url = manager.__enter__() if manager is not None else None
            try:
                _one_size(label, total, shape, Path(scratch), url, table, results)
            finally:
                if manager is not None:
                    manager.__exit__(None, None, None)
        save()


def _one_size(
    label: str,
    total: int,
    shape: Shape,
    scratch: Path,
    url: str | None,
    table: Table,
    results: list[dict[str, Any]],
) -> None:
    services = build_services(_settings(scratch / "home", url), create_keys=True, migrate=True)
    try:
        segments = segments_for(services)
        t0, c0 = time.perf_counter(), time.process_time()
        sealed = generate(shape, total, segments, seed=len(label))
        install_tree(services, sealed, total)
        seal_all(segments, sealed)
        size = sum(p.stat().st_size for p in segments.directory.glob("*.parquet"))
        table.notes.append(
            f"{label}: {total:,} entries in {len(sealed):,} sealed segments "
            f"({size / 2**30:.1f} GiB) generated in {time.perf_counter() - t0:.0f} s "
            f"({time.process_time() - c0:.0f} s CPU), load {_load()}"
        )
        print(table.notes[-1], flush=True)
        if url is not None:
            t0 = time.perf_counter()
            load_postgres(services, [segments.directory / s.file_name for s in sealed])
            table.notes.append(
                f"{label}: PostgreSQL loaded ({total:,} rows, COPY + indexes + ANALYZE) in "
                f"{time.perf_counter() - t0:.0f} s, load {_load()}"
            )
            print(table.notes[-1], flush=True)
        else:
            table.notes.append(f"{label}: PostgreSQL not loaded (DuckDB only at this size)")
        for name, (since, until) in _windows().items():
            case = {"title": f"bench {name}", "accounts": ["thief"], "since": since,
                    "until": until}  # fmt: skip
            incident = declare_case(services, Actor("system:bench"), case).incident_id
            baseline = None
            rows: list[tuple[str, str, float, float, dict[str, Any]]] = []
            if url is not None:
                seconds, cpu, document = _scope(services, incident, "sql")
                baseline = seconds
                rows.append(("sql", "PostgreSQL SQL", seconds, cpu, document))
            for engine_label in ("DuckDB cold", "DuckDB warm"):
                if engine_label == "DuckDB cold":
                    from carevault.incidents import segments as module

                    module._VERIFIED.clear()  # noqa: SLF001 - as a fresh process
                seconds, cpu, document = _scope(services, incident, "duckdb")
                rows.append(("duckdb", engine_label, seconds, cpu, document))
            reference = _evidence(rows[0][4])
            for _engine, engine_label, seconds, cpu, document in rows:
                if _evidence(document) != reference:
                    raise SystemExit(f"the engines disagree on {label}/{name}")
                patients = len(document["tiers"]["confirmed"])
                speedup = ratio(baseline, seconds) if baseline is not None else float("nan")
                load = _load()
                table.add(label, name, engine_label, total, patients, seconds, cpu, speedup, load)
                results.append(
                    {"ledger": label, "window": name, "engine": engine_label, "entries": total,
                     "patients": patients, "seconds": seconds, "cpu_seconds": cpu,
                     "vs_sql": speedup, "loadavg": load}
                )  # fmt: skip
                print(" | ".join(table.rows[-1]), flush=True)
    finally:
        services.close()


if __name__ == "__main__":
    os.environ.setdefault("CAREVAULT_ENVIRONMENT", "test")
    main()
