"""The cost of exact FHIR JSON: ``carevault.fhir.jsonio`` against the stdlib json it replaced.

Decimals now keep the text they were sent as (issues 14 and 15). The read path parses and
re-serialises a record whenever the caller may not see all of it (subsetting), so the new
code must not make that slower. On the stored bodies of a small seeded group (SQLite,
encrypted; every type with its real share of decimals), in one process and one run, each
step is timed the old way (``json.loads`` / ``json.dumps``, floats: lossy) and the new
way, the two taking turns body by body, in rounds:

* ``load``: parse a stored body;
* ``load + dump``: parse and write it again (what ``gate._visible`` does around the cut),
  also for bodies whose decimals carry trailing zeros, as a client keeping precision
  sends them (the seeded group's decimals are all in the shortest form, which the fast
  parser keeps; these take the exact parser);
* ``subset``: what ``gate._visible`` does for a privacy officer (parse, cut, write);
* ``parse request``: a request body, strictly (duplicate keys refused; the new way also
  bounds nesting and keeps decimals);
* ``store``: write a parsed resource as the vault stores it.

Figures: the median over rounds of the mean microseconds per body (wall), and new/old.
Target: no step slower than before (ratio ≤ 1.0), and exact decimals.

    .venv/bin/python -m bench.fhir_json            # about a minute
    .venv/bin/python -m bench.fhir_json --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select

from bench.common import Table, now, ratio, write_results
from bench.serving import deployment, seed
from carevault.bootstrap import Services, build_services, initialise
from carevault.domain.categories import DataCategory
from carevault.fhir import jsonio
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.fhir.subsetting import subset
from carevault.gate import Caller
from carevault.vault.records import Opened
from carevault.vault.tables import resource_head

NAME = "fhir_json"
SYSTEM = Caller(principal="system:bench")
#: What a privacy officer is granted: the Patient is subsetted (no HKID), clinical
#: records are not shown to them at all, so the officer's view of a Patient is the case.
OFFICER = frozenset({DataCategory.IDENTITY, DataCategory.CONTACT, DataCategory.DEMOGRAPHIC})


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m bench.{NAME}", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: small and short")
    parser.add_argument("--patients", type=int, help="patients seeded, whole charts (60)")
    parser.add_argument("--rounds", type=int, help="rounds (9)")
    options = parser.parse_args(argv)
    options.patients = options.patients or (10 if options.quick else 60)
    options.rounds = options.rounds or (3 if options.quick else 9)
    return options


def _old_strict(body: bytes) -> Any:
    """The request parser before: stdlib json, duplicate keys refused, floats."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for key, value in items:
            if key in found:
                raise ValueError("duplicate key")
            found[key] = value
        return found

    return json.loads(body.decode("utf-8"), object_pairs_hook=pairs)


def _old_dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def stored_bodies(services: Services, limit_per_type: int) -> list[tuple[str, bytes]]:
    """(type, stored body) for up to ``limit_per_type`` records of each seeded type."""
    found: list[tuple[str, bytes]] = []
    with services.engine.connect() as connection:
        rows = connection.execute(
            select(resource_head.c.resource_type, resource_head.c.resource_id)
        ).all()
    by_type: dict[str, list[str]] = {}
    for resource_type, resource_id in rows:
        by_type.setdefault(resource_type, []).append(resource_id)
    for resource_type, ids in sorted(by_type.items()):
        rt = RESOURCE_TYPES[resource_type]
        for resource_id in ids[:limit_per_type]:
            opened: Opened = services.gate.read(SYSTEM, rt, resource_id)
            assert opened.body is not None
            found.append((resource_type, opened.body))
    return found


Step = tuple[str, bool, Callable[[int, bytes], object], Callable[[int, bytes], object]]


def steps(bodies: list[tuple[str, bytes]]) -> list[Step]:
    """(name, Patients only?, before, after); each callable takes (index, body)."""
    patient = RESOURCE_TYPES["Patient"]
    parsed_before = [json.loads(body) for _, body in bodies]
    parsed_after = [jsonio.parse(body) for _, body in bodies]

    def subset_before(_: int, body: bytes) -> object:
        return _old_dumps(subset(patient, json.loads(body), OFFICER))

    def subset_after(_: int, body: bytes) -> object:
        return jsonio.dumps(subset(patient, jsonio.load(body), OFFICER))

    return [
        ("load", False, lambda _, b: json.loads(b), lambda _, b: jsonio.load(b)),
        (
            "load + dump, decimals as clients write them (72.50)",
            False,
            lambda _, b: _old_dumps(json.loads(b)),
            lambda _, b: jsonio.dumps(jsonio.load(b)),
        ),
        (
            "load + dump",
            False,
            lambda _, b: _old_dumps(json.loads(b)),
            lambda _, b: jsonio.dumps(jsonio.load(b)),
        ),
        ("subset (Patient, privacy officer)", True, subset_before, subset_after),
        ("parse request", False, lambda _, b: _old_strict(b), lambda _, b: jsonio.parse(b)),
        (
            "store (write a parsed resource)",
            False,
            lambda i, _: _old_dumps(parsed_before[i]),
            lambda i, _: jsonio.dumps(parsed_after[i]),
        ),
    ]


def measure(
    bodies: list[tuple[str, bytes]], rounds: int
) -> list[tuple[str, float, float, float, float]]:
    """Per step: before and after µs per body (median over rounds), and the best round."""
    results = []
    for name, patients_only, before, after in steps(bodies):
        chosen = [
            (index, body)
            for index, (resource_type, body) in enumerate(bodies)
            if not patients_only or resource_type == "Patient"
        ]
        if "72.50" in name:
            chosen = [(index, trailing_zeros(body)) for index, body in chosen if has_decimal(body)]
        before_rounds: list[float] = []
        after_rounds: list[float] = []
        for _ in range(rounds):
            before_time = after_time = 0.0
            for index, body in chosen:
                began = time.perf_counter()
                before(index, body)
                middle = time.perf_counter()
                after(index, body)
                after_time += time.perf_counter() - middle
                before_time += middle - began
            before_rounds.append(before_time / len(chosen) * 1e6)
            after_rounds.append(after_time / len(chosen) * 1e6)
        results.append(
            (
                name,
                statistics.median(before_rounds),
                statistics.median(after_rounds),
                min(before_rounds),
                min(after_rounds),
            )
        )
    return results


def has_decimal(body: bytes) -> bool:
    seen: list[str] = []
    json.loads(body, parse_float=seen.append)
    return bool(seen)


def _padded(value: Any) -> Any:
    if isinstance(value, jsonio.FhirDecimal) and "." in value.text and "e" not in value.text:
        return jsonio.FhirDecimal(value.text + "0")
    if isinstance(value, dict):
        return {key: _padded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_padded(item) for item in value]
    return value


def trailing_zeros(body: bytes) -> bytes:
    """``body`` with each decimal written as a client that keeps precision would: 72.50."""
    return jsonio.dumps(_padded(jsonio.parse(body)))


def exactness(bodies: list[tuple[str, bytes]]) -> tuple[int, int, int, int]:
    """(bodies, bodies holding a decimal, bodies the old way alters on load + dump,
    bodies the new way reads twice: the fast parse would not give back their text)."""
    with_decimals = sum(1 for _, body in bodies if has_decimal(body))
    altered = sum(1 for _, body in bodies if _old_dumps(json.loads(body)) != body)
    slow = sum(1 for _, body in bodies if orjson.dumps(orjson.loads(body)) != body)
    assert all(jsonio.dumps(jsonio.load(body)) == body for _, body in bodies)
    return len(bodies), with_decimals, altered, slow


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    started = now()
    with tempfile.TemporaryDirectory(prefix="carevault-bench-") as scratch:
        target = deployment("json", Path(scratch) / "home", None)
        settings = target.settings()
        initialise(settings)
        services = build_services(settings)
        try:
            seeded = seed(services, patients=options.patients, charts=True)
            print(f"seeded {seeded.resources:,} resources in {seeded.seconds:.1f} s", flush=True)
            bodies = stored_bodies(services, 400 if not options.quick else 50)
        finally:
            services.close()
    count, with_decimals, altered, slow = exactness(bodies)
    measured = measure(bodies, options.rounds)
    table = Table(
        "FHIR JSON: stdlib json (before) against carevault.fhir.jsonio (after), µs per body",
        ["step", "before µs", "after µs", "after / before", "best before", "best after"],
    )
    rows = []
    for name, old, new, best_old, best_new in measured:
        table.add(name, old, new, ratio(new, old), best_old, best_new)
        rows.append(
            {
                "step": name,
                "before_us": round(old, 2),
                "after_us": round(new, 2),
                "ratio": round(ratio(new, old), 3),
                "best_before_us": round(best_old, 2),
                "best_after_us": round(best_new, 2),
            }
        )
    table.notes = [
        f"{count:,} stored bodies of {len({t for t, _ in bodies})} types, {with_decimals:,} "
        f"holding a decimal; the old way alters {altered:,} of them on load + dump "
        f"(the new way none: checked for every body); {slow:,} take the exact (slower) parse",
        "median over rounds of the mean per body; before and after take turns body by body",
    ]
    print()
    print(table.render())
    summary = {
        "bodies": count,
        "with_decimals": with_decimals,
        "altered_before": altered,
        "exact_parse": slow,
        "worst_ratio": max(row["ratio"] for row in rows),
    }
    for path in write_results(
        NAME,
        quick=options.quick,
        settings=vars(options),
        results=rows,
        tables=[table],
        summary=summary,
        started=started,
    ):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
