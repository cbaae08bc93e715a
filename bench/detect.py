"""Detection's cost: FHIR read throughput with the detectors (and the release budget) on
against the same server with them off, in the same run; the detectors' cost per ledger
entry; and how soon an alert is listed while the server is under that read load.

Two data directories are seeded alike (encrypted, a privacy officer and a front desk
account) and served at once; they take turns in rounds as in ``bench.fhir_read`` (whose
read load this is: read-by-id and search-by-identifier at 1 and 32 clients). Both
sides give the privacy officer a release budget large enough never to refuse the load:
what is measured is the work, not refusals. Then, on the side with detection on, while
32 clients keep reading, a front desk account reads 60 patients of its clinic one by
one: the time from the response that crossed its breadth limit to the alert listed by
``GET /admin/alerts`` is the alert latency (wall clock, from outside), and ``raised_at``
minus the triggering entry's time is the same seen by the server. Finally the ledger
the "on" side wrote is replayed through the detectors in this process, in memory, for
the cost per entry (parse, explain by care relationships, every detector).

Target: reads with detection on ≥ 90 % of off, every cell.

    .venv/bin/python -m bench.detect            # a few minutes
    .venv/bin/python -m bench.detect --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import delete

from bench.common import Table, now, ratio, write_results
from bench.load import run_load
from bench.reads import Side, alternate, check_answers, operation_paths, warm_up
from bench.server import password_token, running_server
from bench.serving import (
    Deployment,
    LedgerSizes,
    deployment,
    postgres_database,
    postgres_version,
    prepare,
)
from carevault.bootstrap import build_services
from carevault.db import write_transaction
from carevault.detect.engine import _Memory
from carevault.detect.model import Access
from carevault.detect.tables import detect_alert, detect_cursor, detect_state
from carevault.ledger.store import LedgerEntry
from carevault.web.officers import ADMIN_SCOPE

NAME = "detect"
TARGET = 0.90
OPERATIONS = ("read", "search")
ROLE = "privacy_officer"
BURST = 60
#: Entries per batch in ``step_cost``: about what the server's detection thread takes at
#: each wake-up (every 0.2 s) under the read load measured here.
STEP_BATCH = 100
#: ... of which one in this many is written (``engine.WRITE_SECONDS`` over the poll).
WRITE_EVERY = 5
GENEROUS = "privacy_officer=1000000/10000000"
#: The reader's own alerts (it reads thousands of patients) are raised, never acted on:
#: a step-up would refuse the load and measure refusals instead of reads.
READER_RAISES = ",".join(
    f"{ROLE}:{severity}=raise" for severity in ("low", "medium", "high", "critical")
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.detect", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--patients", type=int)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--backends", default="sqlite")
    args = parser.parse_args(argv)
    args.patients = args.patients or (300 if args.quick else 1000)
    args.seconds = args.seconds or (1.0 if args.quick else 3.0)
    # Six rounds, the sides' order flipping each round: robust to the shared machine's
    # load drifting between one side's turn and the other's.
    args.rounds = args.rounds or (1 if args.quick else 6)
    args.backends = tuple(args.backends.split(","))
    return args


@contextmanager
def pair(backend: str, options: argparse.Namespace, workdir: Path) -> Iterator[list[Side]]:
    with ExitStack() as stack:
        sides = []
        for name, detect in (("off", False), ("on", True)):
            label = f"{backend}-detect-{name}"
            database = (
                stack.enter_context(postgres_database(name)) if backend == "postgres" else None
            )
            target = deployment(
                label, workdir / label, database, detect=detect, release_budget=GENEROUS,
                detect_responses=READER_RAISES, dek_cache_seconds=3600.0,
            )  # fmt: skip
            sides.append(start_with_desk(stack, name, target, workdir, options.patients))
        yield sides


def start_with_desk(
    stack: ExitStack, name: str, target: Deployment, workdir: Path, patients: int
) -> Side:
    """As ``bench.reads.start_side``, with a front desk account seeded as well."""
    seeded = prepare(target, roles=[ROLE, "front_desk"], patients=patients)
    print(f"  {target.label}: seeded {seeded.resources:,} resources in {seeded.seconds:.1f} s")
    server = stack.enter_context(running_server(target, workdir))
    ledgers = LedgerSizes(target)
    stack.callback(ledgers.close)
    # The officer's whole reach: the read load, and GET /admin/alerts (the officer's
    # tools need ``user/*.cruds``, web/officers.py).
    token = password_token(server.url, seeded.login(ROLE), scope=ADMIN_SCOPE)
    side = Side(name, target, seeded, server, token, ledgers)
    check_answers(side)
    warm_up(side)
    return side


def alert_latency(side: Side) -> dict[str, Any]:
    """A front desk burst under 32 clients of read load; how soon the alert is listed."""
    desk = side.seeded.login("front_desk")
    token = password_token(side.server.url, desk)
    mine = [p for p in side.seeded.patients if p.home_clinic_id in desk.clinic_ids][:BURST]
    host, port = side.server.host_port
    load = threading.Thread(
        target=run_load,
        args=(
            host,
            port,
            operation_paths("read", side.seeded, list(range(len(side.seeded.patients)))),
        ),
        kwargs={"token": side.token, "clients": 32, "seconds": 8.0},
    )
    load.start()
    time.sleep(1.0)
    answered: list[float] = []
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=side.server.url, timeout=30) as client:
        for patient in mine:
            reply = client.get(f"/fhir/Patient/{patient.resource_id}",
                               headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            answered.append(time.time())
            statuses[reply.status_code] = statuses.get(reply.status_code, 0) + 1
            if reply.status_code != 200:
                break
        seen_at, alert = None, None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            listed = client.get("/admin/alerts", headers={"Authorization": f"Bearer {side.token}"})
            if listed.status_code != 200:
                raise RuntimeError(f"GET /admin/alerts: {listed.status_code} {listed.text[:300]}")
            found = [a for a in listed.json()["alerts"] if a["account"] == desk.username]
            if found:
                seen_at, alert = time.time(), found[0]
                break
            time.sleep(0.02)
    load.join()
    if alert is None or seen_at is None:
        return {"alert": None, "desk_statuses": statuses}
    # The reply that crossed: the first one answered after the entry that raised the
    # alert was written (same machine, same wall clock). Not the alert's last entry: the
    # desk's reads after the alert was raised widen it and move its last position on.
    raised_by = _raising_entry(side, int(alert["id"]))
    entry_s = None if raised_by is None else raised_by[1] / 1e6
    crossing = next((t for t in answered if entry_s is not None and t >= entry_s), answered[-1])
    return {
        "alert": alert["detector"],
        "action": alert["action"],
        "desk_statuses": statuses,
        "listed_after_s": round(max(seen_at - crossing, 0.0), 3),
    }


def _raising_entry(side: Side, alert_id: int) -> tuple[int, int] | None:
    """(position, time in µs) of the audit entry that raised alert ``alert_id``, as the
    responder's own entry for the alert names it; None if there is none."""
    services = build_services(side.target.settings())
    try:
        assert services.detection is not None
        alert = services.detection.alerts.get(alert_id)
        store = services.audit_ledger.store
        head, _ = store.head()
        for _, data in store.entries(alert.first_position or 0, head):
            document = json.loads(data)
            detail = document.get("detail") or {}
            if detail.get("alert") == alert_id and detail.get("raised_by_entry") is not None:
                position = int(detail["raised_by_entry"])
                raising = store.entry(position)
                return None if raising is None else (position, int(json.loads(raising)["at_us"]))
        return None
    finally:
        services.close()


def replay_cost(side: Side) -> dict[str, Any]:
    """The detectors over the ledger the side wrote, in memory: seconds per entry."""
    services = build_services(side.target.settings())
    try:
        detection = services.detection
        assert detection is not None
        engine = detection.engine
        memory = _Memory(position=0)
        head, _ = services.audit_ledger.store.head()
        context = engine._context(memory)
        started, cpu_started = time.perf_counter(), time.process_time()
        count = 0
        for start in range(0, head, 5000):
            accesses = engine.explainer.explain(
                [
                    Access.parse(seq, data)
                    for seq, data in services.audit_ledger.store.entries(
                        start, min(head, start + 5000)
                    )
                ]
            )
            engine._load(memory, accesses)
            for access in accesses:
                engine._observe(access, memory, context, set())
                count += 1
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    finally:
        services.close()
    return {
        "entries": count,
        # CPU time: robust to the shared machine's load; wall time for comparison.
        "cpu_us_per_entry": round(cpu / max(count, 1) * 1e6, 1),
        "us_per_entry": round(seconds / max(count, 1) * 1e6, 1),
    }


def step_cost(side: Side) -> dict[str, Any]:
    """The detection engine's whole batches over the ledger the side wrote, as the
    server's thread runs them: the writer hands each group of ``STEP_BATCH`` entries over
    in memory, and a batch judges them (care relationships, kinship, every detector, the
    unwrap check) and writes its states, alerts and cursor (or leaves them for the next
    write, as the server does within a second). Detection's own tables are emptied first
    (the side's server is stopped). CPU of this one thread, per entry."""
    services = build_services(side.target.settings())
    try:
        detection = services.detection
        assert detection is not None
        engine = detection.engine
        engine.on_raised = None  # what the server's responses did is not measured again
        with write_transaction(services.engine) as connection:
            for table in (detect_cursor, detect_state, detect_alert):
                connection.execute(delete(table))
        store = services.audit_ledger.store
        head, _ = store.head()
        entries = [LedgerEntry(0, data) for _, data in store.entries(0, head)]
        # Every entry in the engine's memory, as the server's writer hands them over
        # (its thread never reads the ledger back for what its own process wrote).
        engine.max_batch = len(entries)
        engine.committed(0, entries)
        engine.max_batch = STEP_BATCH
        cpu = 0.0
        batches = 0
        started = time.thread_time()
        # The server's thread judges a batch every 0.2 s and writes what raised nothing
        # new once a second: here a write every fifth batch at the latest.
        while engine.step(flush=batches % WRITE_EVERY == WRITE_EVERY - 1):
            batches += 1
        engine.step(flush=True)
        cpu += time.thread_time() - started
    finally:
        services.close()
    return {
        "entries": len(entries),
        "batches": batches,
        "cpu_us_per_entry": round(cpu / max(len(entries), 1) * 1e6, 1),
        "cpu_ms_per_batch": round(cpu / max(batches, 1) * 1e3, 2),
    }


def run_backend(backend: str, options: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    print(f"{backend}:", flush=True)
    with pair(backend, options, workdir) as sides:
        order = list(range(options.patients))
        cells = [(operation, clients) for operation in OPERATIONS for clients in (1, 32)]
        alternate(sides, cells, rounds=options.rounds, seconds=options.seconds, order=order)
        rows = [{"backend": backend, **side.figures(cell)} for side in sides for cell in cells]
        latency = alert_latency(sides[1])
        server_latency = _server_latency(sides[1], latency)
    cost = replay_cost(sides[1])
    return {
        "rows": rows,
        "latency": {**latency, "server_raised_after_s": server_latency},
        "cost": cost,
        "step": step_cost(sides[1]),
    }


def _server_latency(side: Side, latency: dict[str, Any]) -> float | None:
    """raised_at − the time of the entry that raised the alert, both from the server's
    wall clock. (The alert's last position is a later entry once the alert is widened:
    comparing with it gave a negative latency.)"""
    services = build_services(side.target.settings())
    try:
        assert services.detection is not None
        alerts = [
            a
            for a in services.detection.alerts.list()
            if a.last_position is not None and a.role == "front_desk"
        ]
    finally:
        services.close()
    if not alerts or latency.get("alert") is None:
        return None
    raised_by = _raising_entry(side, alerts[0].alert_id)
    if raised_by is None:
        return None
    return round((alerts[0].raised_us - raised_by[1]) / 1e6, 3)


def summarise(results: list[dict[str, Any]]) -> tuple[Table, dict[str, Any]]:
    table = Table(
        "FHIR reads with detection on vs off (same run), and the detectors' own cost",
        ["backend", "detection", "operation", "clients", "reads/s", "p50 ms", "p99 ms",
         "server CPU ms/read", "ratio on/off", "errors"],
    )  # fmt: skip
    ratios: dict[str, float] = {}
    for result in results:
        rows = {(r["operation"], r["clients"], r["side"]): r for r in result["rows"]}
        backend = result["rows"][0]["backend"]
        for operation in OPERATIONS:
            for clients in (1, 32):
                off, on = rows[(operation, clients, "off")], rows[(operation, clients, "on")]
                cell = ratio(on["per_second"], off["per_second"])
                ratios[f"{backend}/{operation}/{clients}"] = round(cell, 3)
                for item, shown in ((off, 1.0), (on, cell)):
                    table.add(
                        backend, item["side"], operation, clients, float(item["per_second"]),
                        float(item["p50_ms"]), float(item["p99_ms"]),
                        float(item["server_cpu_ms_per_request"]), shown, item["errors"],
                    )  # fmt: skip
        latency, cost, step = result["latency"], result["cost"], result["step"]
        table.notes.append(
            f"{backend}: detectors {cost['cpu_us_per_entry']} µs of CPU per ledger entry in "
            f"memory ({cost['us_per_entry']} µs wall; {cost['entries']:,} entries replayed); "
            f"the engine's whole batches of {STEP_BATCH} (care, every detector, states, "
            f"alerts and cursor written) {step['cpu_us_per_entry']} µs of CPU per entry, "
            f"{step['cpu_ms_per_batch']} ms per batch; "
            f"alert {latency.get('alert')} listed by "
            f"GET /admin/alerts {latency.get('listed_after_s')} s after the crossing read, "
            f"raised {latency.get('server_raised_after_s')} s after its ledger entry "
            f"(under 32 clients of read load; the desk's answers {latency.get('desk_statuses')}, "
            f"action {latency.get('action')})"
        )
    table.notes.append(
        f"both sides: release budget {GENEROUS}; responses {READER_RAISES} (the reader's "
        "alerts are raised, not acted on); load average before and after in the JSON"
    )
    worst = min(ratios.values())
    table.notes.insert(
        0, f"ratio = on ÷ off reads/s; target ≥ {TARGET:.0%}: worst {worst:.1%} → "
        f"{'MET' if worst >= TARGET else 'NOT MET'}",
    )  # fmt: skip
    return table, {"target": TARGET, "worst_ratio": worst, "target_met": worst >= TARGET,
                   "ratios": ratios}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    started = now()
    with tempfile.TemporaryDirectory(prefix="carevault-bench-") as scratch:
        results = [run_backend(backend, options, Path(scratch)) for backend in options.backends]
    table, summary = summarise(results)
    print()
    print(table.render())
    settings = {
        **vars(options),
        "postgres": postgres_version() if "postgres" in options.backends else None,
    }
    for path in write_results(
        NAME, quick=options.quick, settings=settings, results=results, tables=[table],
        summary=summary, started=started,
    ):  # fmt: skip
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
