"""Bulk import: records/s of ``carevault import`` against the per-record write path it
replaced, on the same records in one run, and every record read back byte for byte.

Inputs, each written as NDJSON per type (as a Bulk Data export lays them out):

* the Synthea R4 bundles (US records, decimals as Synthea writes them): the workspace's
  full set of 25 in ``../shared/fixtures/synthea-r4`` when it is beside the repository,
  otherwise the three vendored under ``tests/fixtures/synthea-r4``;
* the simulated clinic group (``carevault seed``'s records for ``--patients`` patients,
  with the group's directory), standing for "the seeded group exported and re-imported":
  the same records, written out by the simulator rather than by ``$export``.

Each input is loaded into a fresh SQLite home (encrypted, the local keyring) four ways,
taking turns input by input:

* ``before``: what seeding did before bulk import: ``gate.write`` per 25 patients'
  records, one audit entry per record, no validation;
* ``import, full validation``: the bulk loader as it was first merged: every record
  through ``validate_resource`` (the fhir.resources models), in the writer's process;
* ``import, in process``: the bulk loader with the compiled check (``bulk/shape.py``),
  in the writer's process;
* ``import (N checking processes)``: as ``carevault import`` runs it, the checks in
  worker processes beside the writer.

Figures: wall seconds, records/s, CPU seconds of the process and its workers, records
per CPU second (steadier than wall time on a shared machine), and the ratio against
``before`` and against ``import, full validation``. After the last path, every record
is read back through the gate and compared with its NDJSON line (``meta`` aside): same
bytes, decimals included. Target (issue 15): ≥ 10,000 records/s on SQLite on the
2-core machine.

    .venv/bin/python -m bench.bulk_import              # a few minutes
    .venv/bin/python -m bench.bulk_import --quick      # a smoke run
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from bench.common import Table, now, ratio, write_results
from carevault.bootstrap import Services, build_services, initialise
from carevault.bulk.checking import Checker, default_workers
from carevault.bulk.importer import Importer
from carevault.bulk.journal import Journal
from carevault.bulk.loader import Loader
from carevault.bulk.sources import bundles_to_ndjson, file_phase, read_items
from carevault.config import Settings
from carevault.fhir import jsonio
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller
from carevault.sim.group import build_group
from carevault.sim.patients import generate_patients
from carevault.vault.writer import Put

NAME = "bulk_import"
SYNTHEA_FULL = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "synthea-r4"
SYNTHEA_VENDORED = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "synthea-r4"
SYNTHEA = SYNTHEA_FULL if SYNTHEA_FULL.is_dir() else SYNTHEA_VENDORED
BEFORE_CALLER = Caller(principal="system:seed", purpose="HOPERAT")
READER = Caller(principal="system:bench")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m bench.{NAME}", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: small and short")
    parser.add_argument("--patients", type=int, help="simulated patients (300)")
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help=f"checking processes of the last path ({default_workers()}: the cores but the "
        "writer's)",
    )
    options = parser.parse_args(argv)
    options.patients = options.patients or (20 if options.quick else 300)
    return options


def simulated_ndjson(folder: Path, patients: int) -> list[Path]:
    """The simulated group's records as NDJSON per type."""
    folder.mkdir(parents=True, exist_ok=True)
    group = build_group(7, None)
    handles: dict[str, Any] = {}
    try:
        records = [
            *group.resources(),
            *(
                item
                for record in generate_patients(group, patients, 7, group.today)
                for item in (record.patient, *record.resources)
            ),
        ]
        for item in records:
            name = item["resourceType"]
            if name not in handles:
                handles[name] = (folder / f"{name}.ndjson").open("wb")
            handles[name].write(jsonio.dumps(item) + b"\n")
    finally:
        for handle in handles.values():
            handle.close()
    return sorted(folder.glob("*.ndjson"), key=file_phase)


def cpu_seconds() -> float:
    return sum(cpu_split())


def cpu_split() -> tuple[float, float]:
    """CPU seconds of this process (the writer) and of its finished children (the
    checking processes, counted once they exit)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def fresh_services(root: Path, label: str) -> Services:
    """A fresh home, copied from one initialised once (keys and schema made once)."""
    template = root / "template"
    if not template.exists():
        initialise(_settings(template))
    home = root / label
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(template, home)
    return build_services(_settings(home))


def _settings(home: Path) -> Settings:
    return Settings(home=home, environment="test", checkpoint_seconds=0)


def load_before(services: Services, files: list[Path]) -> int:
    """The old path: batches of about 25 patients' records, an audit entry per record."""
    puts = [
        Put(RESOURCE_TYPES[item.resource["resourceType"]], item.resource["id"], item.resource)
        for path in files
        for item in read_items(path, "bench")
        if item.resource is not None
    ]
    iterator = iter(puts)
    written = 0
    while batch := list(islice(iterator, 650)):
        services.gate.write(BEFORE_CALLER, batch)
        written += len(batch)
    return written


def load_import(
    services: Services, files: list[Path], workers: int, *, compiled: bool = True
) -> int:
    checker = Checker(services.fhir.limits, workers, compiled=compiled)
    try:
        try:
            # As ``carevault import`` runs it: a process of its own.
            loader = Loader(services.gate, services.now_us, checker=checker, hold_collector=True)
        except TypeError:  # another tree's src, from before (bench.bulk_import_ab)
            loader = Loader(services.gate, services.now_us, checker=checker)
        report = Importer(loader, Journal(services.engine, services.keys)).run(files)
    finally:
        checker.close()
    assert report.rejected == 0, [f.rejections[:3] for f in report.files if f.rejections]
    return report.written


def compare(services: Services, files: list[Path]) -> tuple[int, int]:
    """(records compared, records whose bytes differ from their line, meta aside)."""
    compared = differ = 0
    for path in files:
        for raw, item in zip(
            path.read_bytes().splitlines(), read_items(path, "bench"), strict=True
        ):
            assert item.resource is not None
            rt = RESOURCE_TYPES[item.resource["resourceType"]]
            opened = services.gate.read(READER, rt, item.resource["id"])
            assert opened.body is not None
            stored = jsonio.load(opened.body)
            stored.pop("meta", None)
            sent = jsonio.parse(raw)
            sent.pop("meta", None)
            compared += 1
            differ += jsonio.dumps(stored) != jsonio.dumps(sent)
    return compared, differ


def timed(
    action: Callable[[Services, list[Path]], int], services: Services, files: list[Path]
) -> tuple[int, float, float, float]:
    """(records, wall seconds, CPU seconds of every process, CPU seconds of the writer)."""
    own, children = cpu_split()
    began = time.perf_counter()
    count = action(services, files)
    wall = time.perf_counter() - began
    own_after, children_after = cpu_split()
    writer = own_after - own
    return count, wall, writer + children_after - children, writer


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(argv)
    started = now()
    root = Path(tempfile.mkdtemp(prefix="bench-bulk-"))
    workers = options.workers
    bundles = sorted(SYNTHEA.glob("*_*.json"))[: 5 if options.quick else None]
    inputs = {
        f"Synthea R4 ({len(bundles)} bundles)": bundles_to_ndjson(bundles, root / "synthea"),
        f"simulated group ({options.patients:,} patients)": simulated_ndjson(
            root / "simulated", options.patients
        ),
    }
    load_start = os.getloadavg()[0]
    table = Table(
        "Bulk import, SQLite, encrypted (one run, same records)",
        [
            "input",
            "path",
            "records",
            "seconds",
            "records/s",
            "CPU s",
            "records/CPU s",
            "records/writer CPU s",
            "× before",
            "× full validation",
        ],
    )
    results: list[dict[str, Any]] = []
    try:
        for label, files in inputs.items():
            figures: dict[str, tuple[int, float, float, float]] = {}
            for path_name, action in (
                ("before", load_before),
                ("import, full validation", lambda s, f: load_import(s, f, 0, compiled=False)),
                ("import, in process", lambda s, f: load_import(s, f, 0)),
                (f"import ({workers} checking processes)", lambda s, f: load_import(s, f, workers)),
            ):
                services = fresh_services(root, "home")
                try:
                    figures[path_name] = timed(action, services, files)
                    if path_name.startswith("import ("):
                        compared, differ = compare(services, files)
                finally:
                    services.close()
            base = figures["before"][0] / figures["before"][1]
            full = figures["import, full validation"][0] / figures["import, full validation"][1]
            for path_name, (count, seconds, cpu, writer) in figures.items():
                rate = count / seconds
                per_cpu = count / cpu if cpu else 0.0
                per_writer = count / writer if writer else 0.0
                table.add(
                    label,
                    path_name,
                    count,
                    seconds,
                    rate,
                    cpu,
                    per_cpu,
                    per_writer,
                    ratio(rate, base),
                    ratio(rate, full),
                )
                results.append(
                    {
                        "input": label,
                        "path": path_name,
                        "records": count,
                        "seconds": seconds,
                        "records_per_second": rate,
                        "cpu_seconds": cpu,
                        "records_per_cpu_second": per_cpu,
                        "writer_cpu_seconds": writer,
                        "records_per_writer_cpu_second": per_writer,
                        "ratio_to_before": ratio(rate, base),
                        "ratio_to_full_validation": ratio(rate, full),
                    }
                )
            results.append({"input": label, "compared": compared, "differ": differ})
            table.notes.append(
                f"{label}: {compared:,} records read back through the gate, "
                f"{differ} differ from their NDJSON line (meta aside)"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    table.notes.append(
        f"load average (1 min): {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at "
        f"the end, on {os.cpu_count()} CPUs (other work on the machine slows every path "
        "alike; records per CPU second is the steadier figure)"
    )
    print(table.render())
    write_results(
        NAME,
        quick=options.quick,
        settings={
            "patients": options.patients,
            "workers": workers,
            "load_average_start": load_start,
            "load_average_end": os.getloadavg()[0],
        },
        results=results,
        tables=[table],
        summary={
            "best_records_per_second": max(
                r["records_per_second"] for r in results if "records_per_second" in r
            ),
            "target_records_per_second": 10_000,
        },
        started=started,
    )


if __name__ == "__main__":
    main()
