"""Everyday searches at the group's size, encrypted against the same store unencrypted.

Issue 14's three searches, on a store of ``--patients`` patients (the whole chart of the
first ``--charts``), seeded twice in the same run through the gate's writer (the path
``carevault seed`` and the import take): once as deployed (per-patient encryption,
blind-index tokens) and once with encryption off (the benchmark environment alone
allows that), so the ratio is what encryption costs:

* a clinic's Slots for the next week: ``Slot?schedule=<its schedule>&start=ge<tomorrow>
  &start=lt<tomorrow+7>&_sort=start&_count=50`` (clear dates: not patient data)
* a patient's Observations since a date: ``Observation?patient=<id>&date=ge<date>``
* a page of Encounters with their Patients:
  ``Encounter?date=ge<date>&_count=20&_include=Encounter:subject``

and ``Observation?_lastUpdated=ge<today>`` besides. Each runs as the system itself,
in process through the FHIR interactions and the gate (the ledger records every
access). The two stores take turns query by query, round after round, so drift on
the machine falls on both alike. Reported: p50 and p99, the ratio of the unencrypted
p50 to the encrypted one (issue 14's target: at least 70 %), the total matched and the
records opened per query (decrypted: to settle the edges of a date range and to show
the page; counted by the request's decryption budget).

    nice -n 5 .venv/bin/python -m bench.search                   # 20,000 patients, SQLite
    nice -n 5 .venv/bin/python -m bench.search --backends sqlite,postgres
    .venv/bin/python -m bench.search --quick                     # a smoke run
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.common import Table, now, percentile, write_results
from bench.search_ranges import PG_ADMIN_URL, Options, run_query, seed
from carevault.bootstrap import Services, build_services, initialise
from carevault.config import Settings
from carevault.db import temporary_database
from carevault.sim.group import build_group

NAME = "search"
STORES = ("clear", "encrypted")


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: small and short")
    parser.add_argument("--patients", type=int, help="patients (20000, the issue's size)")
    parser.add_argument("--charts", type=int, help="patients with a whole chart (300)")
    parser.add_argument("--rounds", type=int, help="rounds; each runs every query once (20)")
    parser.add_argument("--backends", default="sqlite", help="sqlite,postgres")
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    return Options(
        patients=args.patients or (300 if quick else 20000),
        charts=args.charts if args.charts is not None else (30 if quick else 300),
        rounds=args.rounds or (3 if quick else 20),
        backends=tuple(args.backends.split(",")),
        quick=quick,
    )


def _settings(home: Path, database_url: str | None, *, encryption: bool) -> Settings:
    return Settings(
        environment="benchmark",
        home=home,
        database_url=database_url,
        argon2_memory_kib=8192,
        argon2_time_cost=1,
        checkpoint_seconds=0,
        dek_cache_seconds=3600,
        encryption=encryption,
    )


def _schedule(today: date) -> str:
    """The first clinic's Schedule in the simulated group (seeded with the same seed)."""
    for resource in build_group(7, today).resources():
        if resource["resourceType"] == "Schedule":
            return str(resource["id"])
    raise LookupError("the simulated group has no Schedule")


def queries(today: date, patient: str, schedule: str) -> dict[str, str]:
    tomorrow = today + timedelta(days=1)
    month_ago = today - timedelta(days=30)
    return {
        "a clinic's Slots, next week": (
            f"Slot?schedule=Schedule/{schedule}&start=ge{tomorrow}"
            f"&start=lt{tomorrow + timedelta(days=7)}&_sort=start&_count=50"
        ),
        "a patient's Observations since": f"Observation?patient={patient}&date=ge{month_ago}",
        "page of Encounters + _include Patient": (
            f"Encounter?date=ge{month_ago}&_count=20&_include=Encounter:subject"
        ),
        "Observation _lastUpdated ≥ today": f"Observation?_lastUpdated=ge{today}&_count=20",
    }


def _measure(
    stores: dict[str, Services], searches: dict[str, str], rounds: int
) -> tuple[dict[str, dict[str, list[float]]], dict[str, dict[str, tuple[int, int]]]]:
    times: dict[str, dict[str, list[float]]] = {
        store: {name: [] for name in searches} for store in stores
    }
    facts: dict[str, dict[str, tuple[int, int]]] = {store: {} for store in stores}
    for store, services in stores.items():  # warm: plans, caches, data keys
        for name, search in searches.items():
            _, total, opened = run_query(services, search)
            facts[store][name] = (total, opened)
    for round_number in range(rounds):
        order = list(searches.items())
        if round_number % 2:
            order.reverse()
        for name, search in order:
            pair = list(stores.items())
            if round_number % 2:
                pair.reverse()
            for store, services in pair:
                elapsed, total, opened = run_query(services, search)
                times[store][name].append(elapsed)
                facts[store][name] = (total, opened)
    return times, facts


def _backend(backend: str, options: Options, today: date, tables: list[Table]) -> dict[str, Any]:
    with ExitStack() as stack:
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="carevault-bench-")))
        stores: dict[str, Services] = {}
        seeded: dict[str, dict[str, Any]] = {}
        for store in STORES:
            url = None
            if backend == "postgres":
                url = stack.enter_context(
                    temporary_database(PG_ADMIN_URL, f"carevault_bench_search_{store}")
                )
            settings = _settings(home / store, url, encryption=store == "encrypted")
            initialise(settings)
            services = build_services(settings)
            stack.callback(services.close)
            seeded[store] = seed(services, options, today)
            if url is not None:
                with services.engine.connect() as connection:
                    connection.execution_options(isolation_level="AUTOCOMMIT").execute(
                        text("ANALYZE")
                    )
            stores[store] = services
        patient = seeded["encrypted"]["patient"]
        assert patient == seeded["clear"]["patient"]  # noqa: S101 - same seed, same data
        searches = queries(today, patient, _schedule(today))
        load_before = _loadavg()
        times, facts = _measure(stores, searches, options.rounds)
        load_after = _loadavg()
    resources = seeded["encrypted"]["resources"]
    table = Table(
        f"Searches, {backend}: {options.patients:,} patients ({options.charts:,} with charts, "
        f"{resources:,} resources), {options.rounds} rounds",
        [
            "query",
            "clear p50 ms",
            "clear p99 ms",
            "encrypted p50 ms",
            "encrypted p99 ms",
            "clear / encrypted",
            "matched",
            "opened (enc.)",
        ],
    )
    rows: dict[str, Any] = {}
    for name in searches:
        clear = [percentile(times["clear"][name], q) * 1000 for q in (50, 99)]
        sealed = [percentile(times["encrypted"][name], q) * 1000 for q in (50, 99)]
        total, count = facts["encrypted"][name]
        clear_total, clear_count = facts["clear"][name]
        share = clear[0] / sealed[0]
        table.add(
            name,
            f"{clear[0]:.2f}",
            f"{clear[1]:.2f}",
            f"{sealed[0]:.2f}",
            f"{sealed[1]:.2f}",
            f"{share:.0%}",
            f"{total:,}" if total == clear_total else f"{total:,} ≠ {clear_total:,}",
            count,
        )
        rows[name] = {
            "search": searches[name],
            "clear": {"p50_ms": clear[0], "p99_ms": clear[1], "opened": clear_count},
            "encrypted": {"p50_ms": sealed[0], "p99_ms": sealed[1], "opened": count},
            "matched": total,
            "matched_clear": clear_total,
            "clear_over_encrypted": share,
            "meets_70_percent": share >= 0.70,
        }
    table.notes.append(
        "clear / encrypted: the unencrypted store's p50 over the encrypted one's, in the same "
        "rounds (issue 14's target: ≥ 70 %); opened: records decrypted per query, to settle "
        "the edges of a date range and to show the page (the request's decryption budget)."
    )
    table.notes.append(
        f"seeding took {seeded['clear']['seconds']:.0f} s (clear) and "
        f"{seeded['encrypted']['seconds']:.0f} s (encrypted); load average {load_before} "
        f"before the rounds, {load_after} after, on {os.cpu_count()} CPUs"
    )
    tables.append(table)
    return {
        "backend": backend,
        "rows": rows,
        "seeded": seeded,
        "loadavg": {"before": load_before, "after": load_after},
    }


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    started = now()
    today = date.today()
    tables: list[Table] = []
    results = [_backend(backend, options, today, tables) for backend in options.backends]
    paths = write_results(
        NAME,
        quick=options.quick,
        settings={
            "patients": options.patients,
            "charts": options.charts,
            "rounds": options.rounds,
            "backends": list(options.backends),
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


if __name__ == "__main__":
    raise SystemExit(main())
