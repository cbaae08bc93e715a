"""FHIR reads as the data grow: read-by-id and search-by-identifier at 32 clients on a
group of 2,000 patients and on one of 200,000, PostgreSQL, side by side in one run.

Each size gets its own database and data directory, encrypted, seeded by the fastest
path there is: the bulk loader that ``carevault seed`` and ``carevault import`` use
(``bulk/loader.py``, batches of 2,000 records, one audit entry per patient per batch),
fed the group's directory and Patient resources alone (no charts: a read of a Patient
costs the same, and a read benchmark needs nothing else; see
``bench.serving.seed_bulk``). The seeding is timed from the empty data directory to
the end of the ANALYZE that follows (schema, keys, records, staff accounts), and the
database's size is recorded.

Both deployments are then served at once by ``python -m carevault serve`` and read by a
privacy officer (full authentication, policy, decryption, subsetting, a durable audit
entry per read), the sides taking turns in rounds (ABAB, BABA). Each side reads the same
number of patients (``--sample``, 2,000), drawn at random from its whole population, in
the same order, each read once before measuring: the data-key cache and the release
budget are then warm alike on both sides, so the comparison is of the database's size
alone (index depth, pages touched), not of cold keys. Figures: reads/s, p50/p99, server
CPU per read, audit entries (one per read), and the ratio of each size to the smallest.

Target (issue 15): reads/s at 200,000 patients within 20 % of those at 2,000.

    .venv/bin/python -m bench.fhir_read_scale                        # 2,000 and 200,000
    .venv/bin/python -m bench.fhir_read_scale --patients 2000,50000  # a smaller step
    .venv/bin/python -m bench.fhir_read_scale --quick                # a smoke run
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from bench.common import Table, now, ratio, write_results
from bench.detect import GENEROUS, READER_RAISES
from bench.reads import Side, alternate, check_answers, warm_up
from bench.server import password_token, running_server
from bench.serving import LedgerSizes, deployment, postgres_database, postgres_version, prepare

NAME = "fhir_read_scale"
ROLE = "privacy_officer"
TARGET = 0.80
OPERATIONS = ("read", "search")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m bench.{NAME}", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: small and short")
    parser.add_argument("--patients", help="group sizes, comma-separated (2000,200000)")
    parser.add_argument("--sample", type=int, help="patients read on each side (2000)")
    parser.add_argument("--seconds", type=float, help="seconds per side per round (4)")
    parser.add_argument("--rounds", type=int, help="rounds (2)")
    parser.add_argument("--clients", type=int, help="concurrent clients (32)")
    parser.add_argument("--workers", type=int, default=1, help="server processes (1)")
    parser.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--name", help="results file name (fhir_read_scale)")
    options = parser.parse_args(argv)
    sizes = options.patients or ("200,2000" if options.quick else "2000,200000")
    options.patients = tuple(sorted(int(n) for n in sizes.split(",")))
    options.sample = options.sample or (200 if options.quick else 2000)
    options.seconds = options.seconds or (1.5 if options.quick else 4.0)
    options.rounds = options.rounds or (1 if options.quick else 2)
    options.clients = options.clients or 32
    if options.sample > options.patients[0]:
        parser.error("--sample must not exceed the smallest group")
    return options


def database_mib(url: str) -> float | None:
    """The PostgreSQL database's size on disk (None for SQLite: see the data directory)."""
    if url.startswith("sqlite"):
        return None
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            size = connection.execute(text("SELECT pg_database_size(current_database())"))
            return round(int(size.scalar() or 0) / 2**20, 1)
    finally:
        engine.dispose()


def directory_mib(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 1)


def run(options: argparse.Namespace, workdir: Path) -> tuple[list[dict[str, Any]], list[Side]]:
    rows: list[dict[str, Any]] = []
    with ExitStack() as stack:
        sides: list[Side] = []
        for patients in options.patients:
            label = f"{options.backend}-scale-{patients}"
            database = (
                stack.enter_context(postgres_database(f"scale_{patients}"))
                if options.backend == "postgres"
                else None
            )
            target = deployment(
                label,
                workdir / label,
                database,
                encryption=True,
                dek_cache_seconds=3600,
                release_budget=GENEROUS,
                detect_responses=READER_RAISES,
            )
            print(f"  seeding {patients:,} patients ({label}) ...", flush=True)
            load_before = os.getloadavg()[0]
            began = time.perf_counter()
            seeded = prepare(target, bulk=True, roles=[ROLE], patients=patients, progress=True)
            seconds = time.perf_counter() - began
            load_after = os.getloadavg()[0]
            url = target.settings().resolved_database_url
            size = database_mib(url)
            rows.append(
                {
                    "patients": patients,
                    "seeded_records": seeded.resources,
                    "seed_seconds": round(seconds, 2),
                    "seed_records_per_second": round(seeded.resources / seconds, 1),
                    "loader_seconds": round(seeded.seconds, 2),
                    "database_mib": size,
                    "data_directory_mib": directory_mib(workdir / label),
                    "load_average_seeding": [load_before, load_after],
                }
            )
            print(
                f"  seeded {seeded.resources:,} records in {seconds:.1f} s "
                f"({seeded.resources / seconds:,.0f}/s)",
                flush=True,
            )
            # Every side reads as many patients, drawn from its whole population.
            sample = random.Random(f"{NAME}:{patients}").sample(seeded.patients, options.sample)
            sampled = replace(seeded, patients=sample)
            server = stack.enter_context(running_server(target, workdir, options.workers))
            ledgers = LedgerSizes(target)
            stack.callback(ledgers.close)
            token = password_token(server.url, seeded.login(ROLE))
            sides.append(Side(f"{patients:,} patients", target, sampled, server, token, ledgers))
        for side in sides:
            check_answers(side)
            warm_up(side)
        order = list(range(options.sample))
        random.Random(NAME).shuffle(order)
        cells = [(operation, options.clients) for operation in OPERATIONS]
        alternate(sides, cells, rounds=options.rounds, seconds=options.seconds, order=order)
        for side, patients in zip(sides, options.patients, strict=True):
            rows += [{"patients": patients, **side.figures(cell)} for cell in cells]
        return rows, sides


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(argv)
    started = now()
    load_before = os.getloadavg()
    print(f"{options.backend}:", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as folder:
        rows, _ = run(options, Path(folder))
    load_after = os.getloadavg()
    smallest = options.patients[0]
    reads = Table(
        f"FHIR reads by group size, {options.backend}, encrypted, {options.clients} clients, "
        f"{options.workers} server process{'es' if options.workers > 1 else ''}",
        [
            "operation",
            "patients",
            "reads/s",
            "p50 ms",
            "p99 ms",
            "CPU ms/read",
            "audit entries / reads",
            "errors",
            f"× {smallest:,}",
        ],
    )
    measured = {(r["operation"], r["patients"]): r for r in rows if "operation" in r}
    ratios: dict[str, float] = {}
    for operation in OPERATIONS:
        base = measured[(operation, smallest)]["per_second"]
        for patients in options.patients:
            r = measured[(operation, patients)]
            scaled = ratio(r["per_second"], base)
            ratios[f"{operation} {patients}"] = round(scaled, 3)
            reads.add(
                operation,
                patients,
                r["per_second"],
                r["p50_ms"],
                r["p99_ms"],
                r["server_cpu_ms_per_request"],
                f"{r['audit_entries']:,} / {r['requests']:,}",
                r["errors"],
                scaled,
            )
    largest = options.patients[-1]
    worst = min(ratios[f"{operation} {largest}"] for operation in OPERATIONS)
    # A cell with failed answers (a request stalled until a timeout) measured the stall,
    # not the size: no verdict is drawn from it.
    failed = sum(r["errors"] for r in measured.values())
    verdict = (
        f"NOT JUDGED ({failed} failed answer{'s' if failed > 1 else ''}: see the errors)"
        if failed
        else "MET"
        if worst >= TARGET
        else "NOT MET"
    )
    reads.notes += [
        f"target: reads/s at {largest:,} patients ≥ {TARGET:.0%} of those at {smallest:,}: "
        f"worst {worst:.1%} → {verdict}",
        f"each side reads the same number of patients ({options.sample:,}), drawn from its "
        "whole group, each once before measuring (keys and budgets warm alike)",
        f"load average (1, 5, 15 min) at the start {load_before[0]:.1f} {load_before[1]:.1f} "
        f"{load_before[2]:.1f}, at the end {load_after[0]:.1f} {load_after[1]:.1f} "
        f"{load_after[2]:.1f}, on {os.cpu_count()} CPUs; the load client runs on the same "
        "cores",
    ]
    seeding = Table(
        "Seeding (bulk loader, Patient resources and the group's directory)",
        ["patients", "records", "seconds", "records/s", "database MiB", "load avg"],
    )
    for r in rows:
        if "seed_seconds" in r:
            seeding.add(
                r["patients"],
                r["seeded_records"],
                r["seed_seconds"],
                r["seed_records_per_second"],
                r["database_mib"] if r["database_mib"] is not None else r["data_directory_mib"],
                " → ".join(f"{x:.1f}" for x in r["load_average_seeding"]),
            )
    print(reads.render())
    print(seeding.render())
    write_results(
        options.name or (NAME if options.backend == "postgres" else f"{NAME}-{options.backend}"),
        quick=options.quick,
        settings={**vars(options), "postgres": postgres_version()},
        results=rows,
        tables=[reads, seeding],
        summary={
            "ratio_to_smallest": ratios,
            "worst_ratio_at_largest": worst,
            "target": TARGET,
            "met": worst >= TARGET and not failed,
            "failed_answers": failed,
            "seed_records_per_second": {
                str(r["patients"]): r["seed_records_per_second"]
                for r in rows
                if "seed_seconds" in r
            },
            "load_average_start": load_before,
            "load_average_end": load_after,
        },
        started=started,
    )


if __name__ == "__main__":
    main()
