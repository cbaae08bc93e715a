"""Reads with several server processes: ``carevault serve --workers 1`` against
``--workers N`` on the same data, in one run, on SQLite and PostgreSQL; and the cost of
locating a record by id, SQLAlchemy-built statement against the prebuilt driver
statement the vault now uses, on the same database in the same process.

Per backend, two servers run at once, one with one process and one with N (default:
the number of cores), each on its own encrypted data directory and database seeded
alike (``--patients`` Patients, the same seed): sharing one database made them share
the detectors' lease and ledger, so the idle side's process often judged the measured
side's entries. Both take a privacy officer's token (full authentication, policy,
decryption, subsetting and a durable audit entry per read), and every patient is read
once through every process of a server before anything is measured (each process has
its own data-key and release-budget caches).
Operations: ``GET /fhir/Patient/<id>`` and ``GET /fhir/Patient?identifier=<HKID>``
at ``--clients`` concurrent clients (32). The sides take turns in rounds (ABAB, BABA);
figures are the sum of a side's rounds: reads/s, p50/p99 latency and server CPU per
read (every process of the server). The audit ledger is counted: one entry per read;
so are data-key unwraps during the measured reads (0 when warm), and the CPU each idle
side spends while another is measured (it should be next to nothing).

Targets (issue 15): ≥ 800 reads/s read-by-id with 2 workers on SQLite, ≥ 700 on
PostgreSQL; CPU ≤ 1.2 ms per read-by-id.

    .venv/bin/python -m bench.fhir_read_workers            # a few minutes
    .venv/bin/python -m bench.fhir_read_workers --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench.common import Table, now, ratio, write_results
from bench.detect import GENEROUS, READER_RAISES
from bench.reads import Side, alternate, check_answers, warm_up
from bench.server import password_token, running_server
from bench.serving import Deployment, LedgerSizes, deployment, postgres_database, prepare
from carevault.bootstrap import build_services
from carevault.db import read_transaction
from carevault.vault.records import head_from_row
from carevault.vault.store import _HEAD_COLUMNS, _sealed_join
from carevault.vault.tables import resource_head, resource_version

NAME = "fhir_read_workers"
BEFORE = " (baseline)"
ROLE = "privacy_officer"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m bench.{NAME}", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: small and short")
    parser.add_argument("--patients", type=int, help="patients (2000)")
    parser.add_argument("--seconds", type=float, help="seconds per side per round (4)")
    parser.add_argument("--rounds", type=int, help="rounds (2)")
    parser.add_argument("--clients", type=int, help="concurrent clients (32)")
    parser.add_argument("--workers", type=int, help="processes of the other side (cores)")
    parser.add_argument("--backends", help="sqlite,postgres (both)")
    parser.add_argument("--counts", help="process counts to measure (1,<workers>)")
    parser.add_argument("--name", help="results file name (fhir_read_workers)")
    parser.add_argument(
        "--baseline",
        help="the src/ folder of another copy of CareVault (e.g. main's, before a change): "
        "its servers are measured too, side by side on the same data",
    )
    options = parser.parse_args(argv)
    options.patients = options.patients or (200 if options.quick else 2000)
    options.seconds = options.seconds or (2.0 if options.quick else 4.0)
    options.rounds = options.rounds or 2
    options.clients = options.clients or (8 if options.quick else 32)
    options.workers = options.workers or max(2, os.cpu_count() or 2)
    options.backends = tuple((options.backends or "sqlite,postgres").split(","))
    # PostgreSQL allows 100 connections here: four servers of 1 and 2 processes each
    # (with --baseline) can exhaust them, so a run may measure some process counts only.
    options.counts = tuple(int(n) for n in (options.counts or f"1,{options.workers}").split(","))
    return options


def locate_costs(target: Any, ids: list[str], repeats: int) -> tuple[float, float]:
    """µs per locate: the statement built and run through SQLAlchemy (before) and the
    vault's prebuilt driver statement (now), taking turns id by id."""
    services = build_services(target.settings())
    try:
        before = after = 0.0
        for _ in range(repeats):
            for resource_id in ids:
                began = time.perf_counter()
                with read_transaction(services.engine) as connection:
                    row = connection.execute(
                        select(*_HEAD_COLUMNS, resource_version.c.key_id, resource_version.c.sealed)
                        .select_from(_sealed_join())
                        .where(
                            resource_head.c.resource_type == "Patient",
                            resource_head.c.resource_id == resource_id,
                        )
                    ).first()
                    assert row is not None
                    head_from_row(row._mapping)
                middle = time.perf_counter()
                services.vault.locate("Patient", resource_id)
                after += time.perf_counter() - middle
                before += middle - began
        count = repeats * len(ids)
        return before / count * 1e6, after / count * 1e6
    finally:
        services.close()


def side_deployment(
    backend: str, label: str, workdir: Path, database: str | None, environment: dict[str, str]
) -> Deployment:
    return deployment(
        f"{backend}-{label}",
        workdir / backend / label,
        database,
        encryption=True,
        dek_cache_seconds=3600,
        # The reader opens thousands of patients: its alerts are raised, never acted
        # on (a step-up would refuse the load and measure 401s instead of reads).
        release_budget=GENEROUS,
        detect_responses=READER_RAISES,
        environment=environment,
    )


def run_backend(backend: str, options: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    print(f"{backend}:", flush=True)
    with ExitStack() as stack:
        sides = []
        codes: list[tuple[str, dict[str, str]]] = [("", {})]
        if options.baseline:
            # Another copy of the source (PYTHONPATH comes before the installed package):
            # the code before a change, measured in the same run on the same data.
            codes.insert(0, (BEFORE, {"PYTHONPATH": options.baseline}))
        for workers in options.counts:
            for suffix, environment in codes:
                name = f"{workers} worker{'s' if workers > 1 else ''}{suffix}"
                label = f"w{workers}{'-baseline' if suffix else ''}"
                # Each side its own data directory and database, seeded alike (same
                # seed): sides that shared one database shared its detection lease and
                # ledger, so whichever process held the lease (often the idle side's)
                # judged the measured side's entries, off its books and on its cores.
                database = (
                    stack.enter_context(postgres_database(f"workers_{label.replace('-', '_')}"))
                    if backend == "postgres"
                    else None
                )
                target = side_deployment(backend, label, workdir, database, environment)
                seeded = prepare(target, roles=[ROLE], patients=options.patients)
                print(
                    f"  {name}: seeded {seeded.resources:,} resources in {seeded.seconds:.1f} s",
                    flush=True,
                )
                ledgers = LedgerSizes(target)
                stack.callback(ledgers.close)
                server = stack.enter_context(running_server(target, workdir, workers))
                token = password_token(server.url, seeded.login(ROLE))
                side = Side(name, target, seeded, server, token, ledgers)
                check_answers(side)
                # Every patient through every process: the release budget's and the data
                # keys' caches (one per process) are then warm, as in bench.detect and
                # bench.fhir_read; the table's unwraps column shows what was not.
                warm_up(side, processes=workers)
                sides.append(side)
        order = list(range(options.patients))
        random.Random(f"{NAME}:{backend}").shuffle(order)
        cells = [("read", options.clients), ("search", options.clients)]
        alternate(sides, cells, rounds=options.rounds, seconds=options.seconds, order=order)
        rows = [{"backend": backend, **side.figures(cell)} for side in sides for cell in cells]
        first = sides[-1]
        ids = [first.seeded.patients[i].resource_id for i in order[:200]]
        before_us, after_us = locate_costs(first.target, ids, 3 if options.quick else 10)
        rows.append(
            {"backend": backend, "locate_before_us": before_us, "locate_after_us": after_us}
        )
        return rows


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(argv)
    started = now()
    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as folder:
        for backend in options.backends:
            rows.extend(run_backend(backend, options, Path(folder)))
    table = Table(
        f"FHIR reads, 1 vs {options.workers} server processes, encrypted, "
        f"{options.clients} clients",
        [
            "backend",
            "operation",
            "server",
            "reads/s",
            "p50 ms",
            "p99 ms",
            "CPU ms/read",
            "audit entries",
            "unwraps",
            "idle CPU ms/s",
            "errors",
            "× 1 worker",
            "× baseline",
        ],
    )
    locate = Table(
        "Locating a record by id (µs, same process, same database)",
        ["backend", "SQLAlchemy statement (before)", "prebuilt, on the driver (now)", "ratio"],
    )
    for backend in options.backends:
        measured = [r for r in rows if r["backend"] == backend and "side" in r]
        for operation in ("read", "search"):
            cells = [r for r in measured if r["operation"] == operation]
            speeds = {r["side"]: r["per_second"] for r in cells}
            for r in cells:
                # × 1 worker: against one process of the same code; × baseline: against
                # the baseline code with as many processes.
                base = speeds.get("1 worker" + (BEFORE if r["side"].endswith(BEFORE) else ""))
                then = speeds.get(r["side"] + BEFORE)
                table.add(
                    backend,
                    operation,
                    r["side"],
                    r["per_second"],
                    r["p50_ms"],
                    r["p99_ms"],
                    r["server_cpu_ms_per_request"],
                    r["audit_entries"],
                    r["unwraps"],
                    r["idle_cpu_ms_per_second"],
                    r["errors"],
                    ratio(r["per_second"], base) if base else "",
                    ratio(r["per_second"], then) if then else "",
                )
        costs = next(r for r in rows if r["backend"] == backend and "locate_before_us" in r)
        locate.add(
            backend,
            costs["locate_before_us"],
            costs["locate_after_us"],
            ratio(costs["locate_after_us"], costs["locate_before_us"]),
        )
    table.notes.append(
        f"load average (1 min) at the start {load_before[0]:.1f}, at the end "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; the load "
        "client runs on the same cores"
    )
    table.notes.append(
        "each side its own data directory and database, seeded alike; unwraps: data keys "
        "unwrapped during the measured reads (0: every process's cache was warm); idle CPU: "
        "what the side's server spent, in ms per second, while the other sides were measured"
    )
    print(table.render())
    print(locate.render())
    reads = [r for r in rows if r.get("operation") == "read"]
    write_results(
        options.name or NAME,
        quick=options.quick,
        settings=dict(vars(options)),
        results=rows,
        tables=[table, locate],
        summary={
            "read_per_second": {f"{r['backend']} {r['side']}": r["per_second"] for r in reads},
            "cpu_ms_per_read": {
                f"{r['backend']} {r['side']}": r["server_cpu_ms_per_request"] for r in reads
            },
            "locate_us_median_ratio": statistics.median(
                r["locate_after_us"] / r["locate_before_us"]
                for r in rows
                if "locate_before_us" in r
            ),
        },
        started=started,
    )


if __name__ == "__main__":
    main()
