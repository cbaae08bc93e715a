"""The cost of telling a record's data categories: ``fhir.categories.element_categories``.

Every record written asks (twice in a bulk load: the checking process and the scope of
its ledger entry) and every record a reader is shown may ask again, so a rule that
judges more elements must say what it costs. Over the records of the first five
Synthea R4 bundles (by file name) in ``../shared/fixtures/synthea-r4`` (else those
vendored under ``tests/fixtures/synthea-r4``), one process: per resource type, the mean
microseconds a record over every record of that type, a run being enough passes over
them to take a tenth of a second; the minimum of five runs (after a warm-up pass, so the
code lists' caches are filled as in a running server).

    .venv/bin/python -m bench.element_categories
    .venv/bin/python -m bench.element_categories --quick    # one run, no results files
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.common import Table, now, write_results
from carevault.fhir.categories import element_categories
from carevault.fhir.registry import RESOURCE_TYPES

SYNTHEA_FULL = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "synthea-r4"
SYNTHEA_VENDORED = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "synthea-r4"
BUNDLES = 5
RUNS = 5
#: Seconds a run takes at least (enough passes over a type's records).
RUN_SECONDS = 0.1


def records_by_type(folder: Path, bundles: int) -> dict[str, list[dict[str, Any]]]:
    """The resources of the first ``bundles`` bundles in ``folder``, by type (those
    CareVault holds). A type the bundles hold only as contained resources (Synthea's
    Coverage and ServiceRequest, one of each in every ExplanationOfBenefit) is measured
    on those, as records of their own: a rule for Coverage must show its cost too."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    contained: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in sorted(folder.glob("*.json"))[:bundles]:
        for entry in json.loads(path.read_text())["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] in RESOURCE_TYPES:
                found[resource["resourceType"]].append(resource)
                for item in resource.get("contained") or []:
                    if item.get("resourceType") in RESOURCE_TYPES:
                        contained[item["resourceType"]].append(item)
    for type_name, items in contained.items():
        if type_name not in found:
            found[type_name] = items
    return dict(found)


def microseconds_a_record(type_name: str, records: list[dict[str, Any]], runs: int) -> float:
    """The minimum over ``runs`` of the mean microseconds ``element_categories`` takes."""
    rt = RESOURCE_TYPES[type_name]
    for record in records:
        element_categories(rt, record)
    started = time.perf_counter()
    passes = 0
    while time.perf_counter() - started < RUN_SECONDS / 10:
        for record in records:
            element_categories(rt, record)
        passes += 1
    passes = max(1, passes * 10)
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        for _ in range(passes):
            for record in records:
                element_categories(rt, record)
        best = min(best, (time.perf_counter() - started) / (passes * len(records)))
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run; no results files")
    parser.add_argument("--name", default="element_categories", help="results file stem")
    args = parser.parse_args()
    started = now()
    folder = SYNTHEA_FULL if SYNTHEA_FULL.is_dir() else SYNTHEA_VENDORED
    by_type = records_by_type(folder, BUNDLES)
    runs = 1 if args.quick else RUNS
    table = Table(
        f"element_categories, µs a record (min of {runs}), first {BUNDLES} bundles of "
        f"{folder.name}",
        ["type", "records", "µs a record"],
    )
    results: list[dict[str, Any]] = []
    for type_name in sorted(by_type):
        records = by_type[type_name]
        cost = microseconds_a_record(type_name, records, runs)
        table.add(type_name, len(records), f"{cost:.1f}")
        results.append({"type": type_name, "records": len(records), "microseconds": cost})
    print(table.render())
    if not args.quick:
        write_results(
            args.name,
            quick=False,
            settings={"bundles": BUNDLES, "runs": runs, "folder": str(folder)},
            results=results,
            tables=[table],
            summary={row["type"]: round(row["microseconds"], 2) for row in results},
            started=started,
        )


if __name__ == "__main__":
    main()
