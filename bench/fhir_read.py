"""FHIR read throughput and latency: the encrypted server against its unencrypted baseline.

For each backend (SQLite, PostgreSQL) two data directories are seeded alike, one with
encryption on and one with it off (the benchmark environment alone allows that), and
both are served at once by ``python -m carevault serve`` on loopback. Both run with
full authentication, policy and audit: the same kind of token (a privacy officer's,
group-wide, direct grant), so the only difference is the encryption. Two operations:

* read-by-id: ``GET /fhir/Patient/<id>``
* search-by-identifier: ``GET /fhir/Patient?identifier=http://carevault.hk/sid/hkid|<HKID>``

each at 1 and 32 concurrent clients (keep-alive connections). The two servers take
turns in rounds (ABAB, then BABA) so that drift on the machine hits both alike; the
figures of a side are the sum of its rounds. Every server gets each patient read once
before measuring: the data-key cache then holds every key, and its age limit is raised
(``--dek-cache-seconds``) so no key expires mid-run; the cost of unwrapping is what
``bench.keys_unwrap`` measures. The unwrap ledger is counted to show it.

Target: the encrypted read path keeps at least 70 % of the baseline's throughput.

    .venv/bin/python -m bench.fhir_read            # about 5 minutes
    .venv/bin/python -m bench.fhir_read --quick    # a smoke run, under a minute
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import Table, now, ratio, write_results
from bench.detect import GENEROUS, READER_RAISES
from bench.reads import Side, alternate, start_side
from bench.serving import deployment, postgres_database, postgres_version

NAME = "fhir_read"
TARGET = 0.70
OPERATIONS = ("read", "search")
BACKENDS = ("sqlite", "postgres")
ROLE = "privacy_officer"


@dataclass(frozen=True)
class Options:
    patients: int
    seconds: float
    rounds: int
    clients: tuple[int, ...]
    backends: tuple[str, ...]
    charts: bool
    dek_cache_seconds: float
    quick: bool


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.fhir_read", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: small and short")
    parser.add_argument("--patients", type=int, help="patients per deployment (2000)")
    parser.add_argument("--seconds", type=float, help="seconds per side per round (4)")
    parser.add_argument("--rounds", type=int, help="rounds per cell (3)")
    parser.add_argument("--clients", help="concurrent clients, comma-separated (1,32)")
    parser.add_argument("--backends", help="sqlite,postgres (both)")
    parser.add_argument(
        "--charts", action="store_true", help="seed each patient's whole chart (slow)"
    )
    parser.add_argument(
        "--dek-cache-seconds",
        type=float,
        default=3600.0,
        help="data-key cache age limit of both servers (3600: no key expires mid-run)",
    )
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    backends = tuple((args.backends or ",".join(BACKENDS)).split(","))
    if not set(backends) <= set(BACKENDS):
        parser.error(f"--backends takes {', '.join(BACKENDS)}")
    return Options(
        patients=args.patients or (200 if quick else 2000),
        seconds=args.seconds or (1.0 if quick else 4.0),
        rounds=args.rounds or (1 if quick else 3),
        clients=tuple(int(c) for c in (args.clients or "1,32").split(",")),
        backends=backends,
        charts=bool(args.charts),
        dek_cache_seconds=args.dek_cache_seconds,
        quick=quick,
    )


@contextmanager
def pair(backend: str, options: Options, workdir: Path) -> Iterator[list[Side]]:
    """The baseline and the encrypted server of one backend, seeded, running, warmed up."""
    with ExitStack() as stack:
        sides: list[Side] = []
        for name, encryption in (("baseline", False), ("encrypted", True)):
            label = f"{backend}-{name}"
            database = (
                stack.enter_context(postgres_database(name)) if backend == "postgres" else None
            )
            target = deployment(
                label,
                workdir / label,
                database,
                encryption=encryption,
                dek_cache_seconds=options.dek_cache_seconds,
                # The reader's alerts are raised, never acted on: a step-up would refuse
                # the load and measure 401s instead of reads.
                release_budget=GENEROUS,
                detect_responses=READER_RAISES,
            )
            sides.append(
                start_side(
                    stack,
                    name,
                    target,
                    workdir,
                    role=ROLE,
                    patients=options.patients,
                    charts=options.charts,
                )
            )
        yield sides


def run_backend(backend: str, options: Options, workdir: Path) -> list[dict[str, Any]]:
    print(f"{backend}:", flush=True)
    with pair(backend, options, workdir) as sides:
        order = list(range(options.patients))
        random.Random(f"{NAME}:{backend}").shuffle(order)
        cells = [(operation, clients) for operation in OPERATIONS for clients in options.clients]
        alternate(sides, cells, rounds=options.rounds, seconds=options.seconds, order=order)
        return [
            {"backend": backend, "encryption": side.name == "encrypted", **side.figures(cell)}
            for side in sides
            for cell in cells
        ]


def summarise(rows: list[dict[str, Any]], options: Options) -> tuple[Table, dict[str, Any]]:
    table = Table(
        "FHIR reads: encrypted vs unencrypted baseline (same server, same run)",
        [
            "backend",
            "encryption",
            "operation",
            "clients",
            "reads/s",
            "p50 ms",
            "p99 ms",
            "server CPU ms/read",
            "ratio enc/base",
            "errors",
        ],
    )
    ratios: dict[str, float] = {}
    by_cell = {(r["backend"], r["operation"], r["clients"], r["side"]): r for r in rows}
    for backend in options.backends:
        for operation in OPERATIONS:
            for clients in options.clients:
                base = by_cell[(backend, operation, clients, "baseline")]
                enc = by_cell[(backend, operation, clients, "encrypted")]
                cell_ratio = ratio(enc["per_second"], base["per_second"])
                ratios[f"{backend}/{operation}/{clients}"] = round(cell_ratio, 3)
                for item, shown in ((base, 1.0), (enc, cell_ratio)):
                    table.add(
                        backend,
                        "on" if item["encryption"] else "off (baseline)",
                        "read-by-id" if operation == "read" else "search-by-identifier",
                        clients,
                        float(item["per_second"]),
                        float(item["p50_ms"]),
                        float(item["p99_ms"]),
                        float(item["server_cpu_ms_per_request"]),
                        shown,
                        item["errors"],
                    )
    worst = min(ratios.values())
    errors = sum(r["errors"] for r in rows)
    unrecorded = [r for r in rows if r["audit_entries"] < r["requests"] - r["errors"]]
    table.notes += [
        f"ratio = encrypted reads/s ÷ baseline reads/s; target ≥ {TARGET:.0%}: "
        f"worst {worst:.1%} → {'MET' if worst >= TARGET else 'NOT MET'}",
        f"{options.patients:,} patients per deployment"
        f"{' with whole charts' if options.charts else ' (Patient resources)'}; "
        f"{options.rounds} round(s) × {options.seconds:g} s per side per cell, sides alternating",
        f"token: {ROLE} (group-wide) via the direct grant, on both sides; the audit ledger "
        "records every read on both sides",
        "server CPU = user+system time of the server process per request (not PostgreSQL's);"
        " PostgreSQL databases are ANALYZEd after seeding, as autovacuum would",
        f"data-key unwraps during measurement: "
        f"{sum(r['unwraps'] for r in rows if r['encryption'])} (cache warmed, no expiry)",
    ]
    if errors:
        table.notes.append(f"ERRORS: {errors} requests did not answer 200")
    if unrecorded:
        table.notes.append(f"AUDIT GAP: {len(unrecorded)} cells recorded fewer entries than reads")
    summary = {
        "target": TARGET,
        "worst_ratio": round(worst, 3),
        "target_met": worst >= TARGET,
        "ratios": ratios,
        "errors": errors,
        "audit_complete": not unrecorded,
    }
    return table, summary


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    started = now()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="carevault-bench-") as scratch:
        for backend in options.backends:
            rows += run_backend(backend, options, Path(scratch))
    table, summary = summarise(rows, options)
    print()
    print(table.render())
    settings = {**vars(options), "role": ROLE, "postgres": postgres_version()}
    for path in write_results(
        NAME,
        quick=options.quick,
        settings=settings,
        results=rows,
        tables=[table],
        summary=summary,
        started=started,
    ):
        print(f"wrote {path}")
    return 0 if summary["errors"] == 0 and summary["audit_complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
