"""Date-range searches at the clinic group's size, against an exact read by id.

A data directory is seeded with the group's directory (clinics, practitioners, the
appointment book's Slots), ``--patients`` patients, and the whole chart (encounters,
observations, conditions, …) of the first ``--charts`` of them. Then, in process,
through the FHIR interactions and the gate as the system itself (the ledger records
every access, the unwrap log every key), each search below and the baseline
``GET Patient/<id>`` take turns, round after round, so drift on the machine falls on
all alike:

* a booking portal's first query: ``Slot?start=ge<tomorrow>&_count=10&_sort=start``
* ``Patient?birthdate=ge1990-01-01`` and a one-month birth-date range
* ``Observation?_lastUpdated=ge<today>``
* one patient's Observations since a date: ``Observation?patient=<id>&date=ge<date>``
* one day of Encounters group-wide: ``Encounter?date=ge<day>&date=lt<day+1>``
* a page of Encounters with their Patients: ``Encounter?date=ge<date>&_include=Encounter:subject``

For each: p50 and p99 latency, the ratio of the p50 to the baseline's, the total
matched, and the records opened to settle the edges of the range (the rest of a page
is opened to be shown, like any read).

    .venv/bin/python -m bench.search_ranges             # 5,000 patients, about 10 minutes
    .venv/bin/python -m bench.search_ranges --patients 20000 --charts 1000   # demo size
    .venv/bin/python -m bench.search_ranges --quick     # a smoke run

Seeding dominates the run (the appointment book alone is some 8,000 Slots); on the shared
two-core machine 20,000 patients take over ten minutes to write, hence 5,000 by default.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

from bench.common import Table, now, percentile, ratio, write_results
from carevault.bootstrap import Services, build_services, initialise
from carevault.config import Settings
from carevault.db import temporary_database
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller
from carevault.gate.core import DecryptionBudget
from carevault.sim.group import build_group
from carevault.sim.loader import SEED_CALLER
from carevault.sim.patients import generate_patients
from carevault.vault.writer import Put

NAME = "search_ranges"
BASE = "http://bench.local/fhir"
PATIENTS_PER_TRANSACTION = 200
PG_ADMIN_URL = os.environ.get(
    "CAREVAULT_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _settings(home: Path, database_url: str | None) -> Settings:
    """The benchmark environment (as bench.serving's deployments): cheap argon2, no
    scheduled checkpoints, a data-key cache that outlives the run."""
    return Settings(
        environment="benchmark",
        home=home,
        database_url=database_url,
        argon2_memory_kib=8192,
        argon2_time_cost=1,
        checkpoint_seconds=0,
        dek_cache_seconds=3600,
    )


def _postgres_version() -> str | None:
    from sqlalchemy import create_engine, text

    try:
        admin = create_engine(PG_ADMIN_URL)
        with admin.connect() as connection:
            version = connection.execute(text("SHOW server_version")).scalar()
        admin.dispose()
    except Exception:  # noqa: BLE001 - only for the record of the machine
        return None
    return str(version)


@dataclass(frozen=True)
class Options:
    patients: int
    charts: int
    rounds: int
    backends: tuple[str, ...]
    quick: bool


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.search_ranges", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: small and short")
    parser.add_argument("--patients", type=int, help="patients (5000; the demo has 20000)")
    parser.add_argument("--charts", type=int, help="patients with a whole chart (300)")
    parser.add_argument("--rounds", type=int, help="rounds; each runs every query once (20)")
    parser.add_argument("--backends", default="sqlite,postgres", help="sqlite,postgres")
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    return Options(
        patients=args.patients or (300 if quick else 5000),
        charts=args.charts if args.charts is not None else (30 if quick else 300),
        rounds=args.rounds or (3 if quick else 20),
        backends=tuple(args.backends.split(",")),
        quick=quick,
    )


def seed(services: Services, options: Options, today: date) -> dict[str, Any]:
    started = time.perf_counter()
    group = build_group(7, today)
    directory = list(group.resources())
    services.gate.write(SEED_CALLER, [_put(resource) for resource in directory])
    written = len(directory)
    first_patient = ""
    records = generate_patients(group, options.patients, 7, today)
    done = 0
    while batch := list(islice(records, PATIENTS_PER_TRANSACTION)):
        operations = []
        for record in batch:
            first_patient = first_patient or record.patient["id"]
            charted = done < options.charts
            operations += [_put(record.patient)]
            if charted:
                operations += [_put(resource) for resource in record.resources]
            done += 1
        services.gate.write(SEED_CALLER, operations)
        written += len(operations)
    return {
        "resources": written,
        "seconds": time.perf_counter() - started,
        "patient": first_patient,
    }


def _put(resource: dict[str, Any]) -> Put:
    return Put(RESOURCE_TYPES[resource["resourceType"]], resource["id"], resource)


def queries(today: date, patient: str) -> dict[str, str]:
    tomorrow = today + timedelta(days=1)
    month_ago = today - timedelta(days=30)
    day = today - timedelta(days=7)
    return {
        "Slot start ≥ tomorrow, 10 sorted": f"Slot?start=ge{tomorrow}&_count=10&_sort=start",
        "Patient birthdate ≥ 1990": "Patient?birthdate=ge1990-01-01",
        "Patient birthdate in Jan 1990": "Patient?birthdate=ge1990-01-01&birthdate=lt1990-02-01",
        "Observation _lastUpdated ≥ today": f"Observation?_lastUpdated=ge{today}",
        "one patient's Observations since": f"Observation?patient={patient}&date=ge{month_ago}",
        "Encounters of one day": f"Encounter?date=ge{day}&date=lt{day + timedelta(days=1)}",
        "Encounters since + _include Patient": (
            f"Encounter?date=ge{month_ago}&_include=Encounter:subject"
        ),
    }


def run_query(services: Services, search: str) -> tuple[float, int, int]:
    """Seconds, total matched, records opened to settle the search."""
    type_name, _, text = search.partition("?")
    params = [tuple(part.split("=", 1)) for part in text.split("&")]
    budget = DecryptionBudget(10**9)
    caller = Caller(principal="bench", budget=budget)
    started = time.perf_counter()
    response = services.fhir.search(
        caller, type_name, [(name, value) for name, value in params], BASE, strict=True
    )
    elapsed = time.perf_counter() - started
    assert response.status == 200, response.body
    assert response.body is not None
    total = int(response.body.split(b'"total":', 1)[1].split(b",", 1)[0])
    return elapsed, total, budget.spent


def run_read(services: Services, patient: str) -> float:
    caller = Caller(principal="bench")
    started = time.perf_counter()
    response = services.fhir.read(caller, "Patient", patient, BASE)
    elapsed = time.perf_counter() - started
    assert response.status == 200
    return elapsed


def measure(services: Services, options: Options, today: date, patient: str) -> dict[str, Any]:
    searches = queries(today, patient)
    times: dict[str, list[float]] = {name: [] for name in [*searches, "baseline"]}
    facts: dict[str, tuple[int, int]] = {}
    for name, search in searches.items():  # warm: plans, caches, data keys
        _, total, opened = run_query(services, search)
        facts[name] = (total, opened)
    run_read(services, patient)
    for round_number in range(options.rounds):
        order = list(searches.items())
        if round_number % 2:
            order.reverse()
        for name, search in order:
            times["baseline"].append(run_read(services, patient))
            elapsed, total, opened = run_query(services, search)
            times[name].append(elapsed)
            facts[name] = (total, opened)
    return {"times": times, "facts": facts}


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    started = now()
    today = date.today()
    tables: list[Table] = []
    results: list[dict[str, Any]] = []
    for backend in options.backends:
        with tempfile.TemporaryDirectory(prefix="carevault-bench-") as home:
            if backend == "postgres":
                with temporary_database(PG_ADMIN_URL, "carevault_bench_ranges") as url:
                    results.append(_backend(backend, Path(home), url, options, today, tables))
            else:
                results.append(_backend(backend, Path(home), None, options, today, tables))
    paths = write_results(
        NAME,
        quick=options.quick,
        settings={
            "patients": options.patients,
            "charts": options.charts,
            "rounds": options.rounds,
            "postgres": _postgres_version(),
        },
        results=results,
        tables=tables,
        summary={r["backend"]: r["rows"] for r in results},
        started=started,
    )
    for table in tables:
        print(table.render())
    print("wrote", ", ".join(str(path) for path in paths))
    return 0


def _backend(
    backend: str,
    home: Path,
    url: str | None,
    options: Options,
    today: date,
    tables: list[Table],
) -> dict[str, Any]:
    settings = _settings(home, url)
    initialise(settings)
    services = build_services(settings)
    try:
        seeded = seed(services, options, today)
        if url is not None:
            from sqlalchemy import text

            with services.engine.connect() as connection:
                connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
        measured = measure(services, options, today, seeded["patient"])
    finally:
        services.close()
    baseline = percentile(measured["times"]["baseline"], 50)
    table = Table(
        f"Date-range searches, {backend}: {options.patients:,} patients "
        f"({options.charts:,} with charts, {seeded['resources']:,} resources), "
        f"{options.rounds} rounds",
        ["query", "p50 ms", "p99 ms", "p50 / id read", "matched", "records opened"],
    )
    rows: dict[str, Any] = {}
    for name, values in measured["times"].items():
        p50, p99 = percentile(values, 50) * 1000, percentile(values, 99) * 1000
        total, opened = measured["facts"].get(name, (1, 0))
        table.add(
            name, f"{p50:.2f}", f"{p99:.2f}", f"{ratio(p50 / 1000, baseline):.1f}×", total, opened
        )
        rows[name] = {"p50_ms": p50, "p99_ms": p99, "matched": total, "opened": opened}
    table.notes.append(
        "baseline: GET Patient/<id> (exact read by id) in the same rounds; "
        "opened: records decrypted, to settle the edges of a range and to show the page "
        "(the system caller: no policy filter opens records)."
    )
    table.notes.append(f"seeding took {seeded['seconds']:.0f} s")
    tables.append(table)
    return {"backend": backend, "rows": rows, "seeded": seeded}


if __name__ == "__main__":
    raise SystemExit(main())
