"""Bulk import, this tree against another commit's, in turns on the same records.

``bench.bulk_import`` compares paths of one tree; this compares two trees on the path
``carevault import`` runs (compiled check, in process; ``--workers N``: in N checking
processes beside the writer), the other tree's ``src`` first on ``PYTHONPATH``. Each run
prints one line per input: records, wall and CPU seconds, records per CPU second
(steadier than wall time on a shared machine), records per CPU second of the writer alone
(what bounds the rate when the checking keeps up on another core) and the load::

    git archive BASE src | tar -x -C /tmp/base
    PYTHONPATH=/tmp/base/src:. .venv/bin/python -m bench.bulk_import_ab --label base
    .venv/bin/python -m bench.bulk_import_ab --label branch

Run the two in turns (base, branch, base, branch) and compare runs side by side.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.bulk_import import (
    SYNTHEA,
    bundles_to_ndjson,
    cpu_split,
    fresh_services,
    load_import,
    simulated_ndjson,
)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bulk_import_ab", description=__doc__)
    parser.add_argument("--label", required=True, help="what this tree is (base, branch)")
    parser.add_argument("--patients", type=int, default=300, help="simulated patients (300)")
    parser.add_argument(
        "--workers", type=int, default=0, help="checking processes (0: in the writer)"
    )
    options = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-bulk-ab-"))
    try:
        bundles = sorted(SYNTHEA.glob("*_*.json"))
        inputs = {
            "simulated": simulated_ndjson(root / "simulated", options.patients),
            "synthea": bundles_to_ndjson(bundles, root / "synthea"),
        }
        # The first load of a process pays for importing the FHIR models: paid here.
        warm = fresh_services(root, "warm")
        try:
            load_import(warm, bundles_to_ndjson(bundles[:2], root / "warming"), 0)
        finally:
            warm.close()
        for name, files in inputs.items():
            services = fresh_services(root, "home")
            load = os.getloadavg()[0]
            (own, children), began = cpu_split(), time.perf_counter()
            try:
                count = load_import(services, files, options.workers)
            finally:
                services.close()
            wall = time.perf_counter() - began
            own_after, children_after = cpu_split()
            writer = own_after - own
            used = writer + children_after - children
            print(
                f"{options.label:8s} {name:10s} records={count} wall={wall:.2f} "
                f"cpu={used:.2f} writer-cpu={writer:.2f} records/s={count / wall:.0f} "
                f"records/cpu-s={count / used:.0f} records/writer-cpu-s={count / writer:.0f} "
                f"load={load:.1f}-{os.getloadavg()[0]:.1f}",
                flush=True,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
