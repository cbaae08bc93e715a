"""Where a bulk import's CPU goes, stage by stage, and the rates that leaves possible.

On the same records (the simulated clinic group and the Synthea R4 bundles, as
``bench.bulk_import`` writes them out), each stage that needs no database is timed on
its own over every record, in this process (CPU seconds, the steadier figure on a
shared machine):

* ``read, exact``: an NDJSON line to its resource with exact decimals (what an import
  in one process does);
* ``read, loose``: the same without the decimal walk (what the writer does when
  checking processes read every line again);
* ``check``: the compiled validation (``bulk/shape.py``, the full validation for what it
  is unsure of);
* ``derive``: what the writer needs worked out from a record alone (search terms,
  sensitivity marker, categories: ``fhir/derived.py``);

then the whole import in one process (``carevault import``'s default), whose CPU less
the three stages it holds is the writer's own part (sealing, blind tokens, heads,
versions, care relationships, audit entries, SQLite). The table gives each stage in
µs per record and the rates the stages bound: one core doing everything; two cores
with the work split perfectly; and the writer alone (what no number of checking
processes can go past, since one transaction writes at a time).

    .venv/bin/python -m bench.bulk_import_stages            # about a minute
    .venv/bin/python -m bench.bulk_import_stages --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.bulk_import import SYNTHEA, fresh_services, load_import, simulated_ndjson
from bench.common import Table, now, write_results
from carevault.bulk.checking import verdict
from carevault.bulk.collector import collector_paused
from carevault.bulk.shape import compile_all
from carevault.bulk.sources import bundles_to_ndjson, read_items
from carevault.fhir.content import InputLimits
from carevault.fhir.derived import derive
from carevault.fhir.registry import RESOURCE_TYPES

NAME = "bulk_import_stages"
TARGET = 10_000


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m bench.{NAME}", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: small and short")
    parser.add_argument("--patients", type=int, help="simulated patients (1500)")
    options = parser.parse_args(argv)
    options.patients = options.patients or (30 if options.quick else 1500)
    return options


def cpu(action: Callable[[], object]) -> float:
    """CPU seconds of ``action``, the cyclic collector paused as an import pauses it."""
    with collector_paused():
        began = time.process_time()
        action()
        return time.process_time() - began


def stages(files: list[Path], root: Path) -> dict[str, float]:
    """CPU seconds of each stage over every record of ``files``, and the record count."""
    limits = InputLimits()
    zone = ZoneInfo("Asia/Hong_Kong")
    compile_all(RESOURCE_TYPES)
    exact = [item for path in files for item in read_items(path, "bench")]
    resources = [item.resource for item in exact if item.resource is not None]
    figures = {
        "records": float(len(resources)),
        "read, exact": cpu(lambda: [item for path in files for item in read_items(path, "bench")]),
        "read, loose": cpu(
            lambda: [
                item for path in files for item in read_items(path, "bench", exact_numbers=False)
            ]
        ),
        "check": cpu(lambda: [verdict(resource, None, limits) for resource in resources]),
        "derive": cpu(
            lambda: [
                derive(RESOURCE_TYPES[resource["resourceType"]], resource, zone)
                for resource in resources
            ]
        ),
    }
    services = fresh_services(root, "warm")
    try:
        load_import(services, files[:3], 0)
    finally:
        services.close()
    services = fresh_services(root, "home")
    try:
        began = time.perf_counter()
        figures["import, one process"] = cpu(lambda: load_import(services, files, 0))
        figures["wall"] = time.perf_counter() - began
    finally:
        services.close()
    return figures


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(argv)
    started = now()
    root = Path(tempfile.mkdtemp(prefix="bench-stages-"))
    bundles = sorted(SYNTHEA.glob("*_*.json"))[: 5 if options.quick else None]
    inputs = {
        f"simulated group ({options.patients:,} patients)": simulated_ndjson(
            root / "simulated", options.patients
        ),
        f"Synthea R4 ({len(bundles)} bundles)": bundles_to_ndjson(bundles, root / "synthea"),
    }
    load_start = os.getloadavg()[0]
    table = Table(
        "Bulk import, SQLite, encrypted: CPU per record by stage (µs)",
        [
            "input",
            "records",
            "read, exact",
            "read, loose",
            "check",
            "derive",
            "writer's own",
            "import, one process",
            "measured records/s",
            "bound: one core",
            "bound: two cores, split perfectly",
            "bound: writer alone",
        ],
    )
    results: list[dict[str, Any]] = []
    try:
        for label, files in inputs.items():
            figures = stages(files, root)
            count = figures["records"]

            def per(name: str, figures: dict[str, float] = figures, count: float = count) -> float:
                return figures[name] / count * 1e6

            whole = per("import, one process")
            writer = whole - per("read, exact") - per("check") - per("derive")
            # Beside checking processes the writer reads each line loosely and gets the
            # rest worked out: its floor is its own part and the loose read.
            writer_alone = writer + per("read, loose")
            row = {
                "input": label,
                "records": int(count),
                **{name: per(name) for name in ("read, exact", "read, loose", "check", "derive")},
                "writer_own_us": writer,
                "import_one_process_us": whole,
                "measured_records_per_second": count / figures["wall"],
                "bound_one_core": 1e6 / whole,
                "bound_two_cores": 2e6 / whole,
                "bound_writer_alone": 1e6 / writer_alone,
            }
            results.append(row)
            table.add(
                label,
                int(count),
                per("read, exact"),
                per("read, loose"),
                per("check"),
                per("derive"),
                writer,
                whole,
                row["measured_records_per_second"],
                row["bound_one_core"],
                row["bound_two_cores"],
                row["bound_writer_alone"],
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    table.notes.append(
        "bounds are records/s: one core = 1 / the import's CPU per record; two cores = twice "
        "that (no cost for handing work between processes, which today's checking processes "
        "do pay: they read each line again); writer alone = 1 / (writer's own part + a loose "
        f"read), the most checking processes could ever give. Target (issue 15): {TARGET:,}/s"
    )
    table.notes.append(
        f"load average (1 min): {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at "
        f"the end, on {os.cpu_count()} CPUs"
    )
    print(table.render())
    write_results(
        NAME,
        quick=options.quick,
        settings={"patients": options.patients, "load_average_start": load_start},
        results=results,
        tables=[table],
        summary={
            "best_bound_writer_alone": max(row["bound_writer_alone"] for row in results),
            "target_records_per_second": TARGET,
        },
        started=started,
    )


if __name__ == "__main__":
    main()
