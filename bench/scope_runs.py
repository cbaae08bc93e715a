"""What an incident's scope costs to compute and keep, against reading the kept run back,
on the demo data set: the console's staged breach (``bench.console_render.stage_breach``:
a front desk reads past its release budget, an incident names the desk and its clinic).

Copies a seeded data directory (``--home``; without it, seeds ``--patients`` into a
scratch directory) so the run never changes it, stages the breach, computes the first
run (warming what a running server has warm: the people cache, the sealed segments),
then, ``--rounds`` times each, with the process's CPU clock (robust under load):

* **compute**: ``compute_scope``, what ``carevault incident scope``, the API and the
  console's Recompute run: the scope engine, the tiers, the document, the kept run;
* of which **compute() alone**: ``incidents.scope.compute`` (the document, not kept);
* **kept run**: ``kept_scope``, what the console's scope page reads: the row, the
  digest checked against the text and the ledger entry, the JSON parsed.

The baseline is the kept run. One more compute runs under cProfile (process time):
``bench/results/scope_runs-profile.txt``, the functions by cumulative and by own time.

    .venv/bin/python -m bench.scope_runs --home DIR [--rounds 5]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tests.e2e.console.timing import load_average

from bench.common import Table, now, percentile, ratio, write_results
from bench.console_render import breach_services, demo_home, stage_breach
from carevault.incidents import Actor, compute_scope, incidents_for, kept_scope
from carevault.incidents.runs import canonical
from carevault.incidents.scope import compute

NAME = "scope_runs"
RESULTS = Path(__file__).parent / "results"
ACTOR = Actor("system:bench")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scope_runs", description=__doc__)
    parser.add_argument("--home", type=Path, help="A seeded data directory (SQLite), copied.")
    parser.add_argument("--patients", type=int, default=2000, help="Seeded without --home.")
    parser.add_argument("--budget", type=int, default=150, help="The front desk's budget.")
    parser.add_argument("--rounds", type=int, default=5, help="Timed calls of each.")
    parser.add_argument("--quick", action="store_true", help="300 patients, 2 rounds.")
    options = parser.parse_args(argv)
    if options.quick:
        options.patients, options.rounds, options.budget = 300, 2, 10
    return options


def _cpu_ms(call: Callable[[], Any]) -> float:
    started = time.process_time()
    call()
    return (time.process_time() - started) * 1000


def measure(home: Path, options: argparse.Namespace) -> dict[str, Any]:
    services = breach_services(home, options.budget)
    try:
        _, incident_id, facts = stage_breach(services, options.budget)
        first = compute_scope(services, incident_id, actor=ACTOR)  # warm, as a server is
        assert first.document is not None  # noqa: S101 - a computed run carries its document
        facts["people"] = first.document["counts"]["people"]
        incident = incidents_for(services).get(incident_id)
        kinds: dict[str, Callable[[], Any]] = {
            "kept run (kept_scope)": lambda: kept_scope(services, incident_id),
            "compute() alone": lambda: compute(services, incident),
            "compute and keep (compute_scope)": lambda: compute_scope(
                services, incident_id, actor=ACTOR
            ),
        }
        rows: list[dict[str, Any]] = []
        for kind, call in kinds.items():
            for round_number in range(options.rounds):
                rows.append(
                    {
                        "kind": kind,
                        "round": round_number,
                        "cpu_ms": round(_cpu_ms(call), 2),
                        "load_average": load_average(),
                    }
                )
        profiler = cProfile.Profile(time.process_time)
        profiler.runcall(compute_scope, services, incident_id, actor=ACTOR)
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(30)
        kept = kept_scope(services, incident_id)
        facts["document_bytes"] = len(canonical(kept.document or {}))
    finally:
        services.close()
    return {"facts": facts, "rows": rows, "profile": text.getvalue()}


def summarise(measured: dict[str, Any], options: argparse.Namespace) -> Table:
    rows, facts = measured["rows"], measured["facts"]
    kinds = list(dict.fromkeys(row["kind"] for row in rows))

    def p50(kind: str) -> float:
        return percentile([row["cpu_ms"] for row in rows if row["kind"] == kind], 50)

    people = facts["people"]
    table = Table(
        f"Scope of the staged breach: {people['confirmed']:,} confirmed, "
        f"{people['potentially']:,} potentially ({options.rounds} calls each)",
        ["what", "CPU p50 (ms)", "CPU min (ms)", "× kept run", "load average"],
    )
    base = p50(kinds[0])
    for kind in kinds:
        found = [row for row in rows if row["kind"] == kind]
        table.add(
            kind,
            p50(kind),
            min(row["cpu_ms"] for row in found),
            ratio(p50(kind), base),
            round(sum(row["load_average"] for row in found) / len(found), 2),
        )
    table.notes.append(
        "CPU: the process's CPU clock around one call (robust under load). The kept "
        f"document is {facts['document_bytes']:,} bytes of canonical JSON."
    )
    return table


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    started = now()
    with tempfile.TemporaryDirectory(prefix="carevault-bench-") as scratch:
        home = Path(scratch) / "home"
        demo_home(home, options.home, options.patients)
        measured = measure(home, options)
    table = summarise(measured, options)
    print(table.render())
    suffix = "-quick" if options.quick else ""
    profile = RESULTS / f"{NAME}-profile{suffix}.txt"
    profile.write_text(measured["profile"], encoding="utf-8")
    print(f"wrote {profile}")
    recorded = {**vars(options), "home": str(options.home) if options.home else None}
    for path in write_results(
        NAME,
        quick=options.quick,
        settings={key: str(value) for key, value in recorded.items()},
        results=measured["rows"],
        tables=[table],
        summary=measured["facts"],
        started=started,
    ):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
