"""What the PostgreSQL record-writes lock costs a write, and what a poll's settling costs.

Every transaction that writes records takes an advisory lock, shared, before it stamps
them (``db.hold_record_writes``), so that a history poll or an export can read a time
before which every stamped version is committed (``db.settled_now``). Measured here on a
database of the benchmark's own, in turns against the same transaction without the lock
(the baseline): a one-row insert, the smallest write transaction there is, so the
figure is the lock's whole cost, not diluted by a real write's work (several ms through
the gate). And ``settled_now`` with nothing in flight, against a plain round trip::

    .venv/bin/python -m bench.record_writes_lock            # about half a minute
    .venv/bin/python -m bench.record_writes_lock --quick
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Sequence

from sqlalchemy import Connection, Engine, create_engine

from bench.common import Table, now, ratio, write_results
from bench.ledger_workload import PG_ADMIN_URL
from carevault.db import hold_record_writes, settled_now, temporary_database


def _timed(engine: Engine, body: Callable[[Connection], None], runs: int) -> list[float]:
    """Seconds of each of ``runs`` transactions running ``body``, one connection."""
    seconds = []
    with engine.connect() as connection:
        for _ in range(runs):
            began = time.perf_counter()
            with connection.begin():
                body(connection)
            seconds.append(time.perf_counter() - began)
    return seconds


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.record_writes_lock", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--rounds", type=int, default=3, help="turns of each (3)")
    options = parser.parse_args(argv)
    runs = 200 if options.quick else 3000
    started = now()
    admin = os.environ.get("CAREVAULT_BENCH_PG_URL", PG_ADMIN_URL)
    results: list[dict[str, object]] = []
    with temporary_database(admin, "carevault_bench_lock") as url:
        engine = create_engine(url)
        try:
            with engine.begin() as connection:
                connection.exec_driver_sql("CREATE TABLE written (x integer)")

            def plain(connection: Connection) -> None:
                connection.exec_driver_sql("INSERT INTO written VALUES (1)")

            def locked(connection: Connection) -> None:
                hold_record_writes(connection)
                plain(connection)

            def round_trip(connection: Connection) -> None:
                connection.exec_driver_sql("SELECT 1")

            for turn in range(options.rounds):
                for name, body in (("insert", plain), ("insert, lock held", locked)):
                    seconds = _timed(engine, body, runs)
                    results.append({"turn": turn, "case": name, "seconds": seconds})
                seconds = _timed(engine, round_trip, runs)
                results.append({"turn": turn, "case": "round trip", "seconds": seconds})
                settles = []
                for _ in range(runs):
                    began = time.perf_counter()
                    settled_now(engine, time.time_ns)
                    settles.append(time.perf_counter() - began)
                results.append({"turn": turn, "case": "settled_now", "seconds": settles})
        finally:
            engine.dispose()
    table = Table(
        "PostgreSQL record-writes lock: µs per transaction (median over each turn)",
        ["case", "turn", "median µs", "mean µs", "x baseline"],
    )
    summary: dict[str, float] = {}
    baselines = {"insert, lock held": "insert", "settled_now": "round trip"}
    medians = {
        (r["turn"], r["case"]): statistics.median(r["seconds"]) * 1e6  # type: ignore[arg-type]
        for r in results
    }
    for r in results:
        case, turn = str(r["case"]), r["turn"]
        seconds: list[float] = r["seconds"]  # type: ignore[assignment]
        median = medians[(turn, case)]
        base = medians.get((turn, baselines.get(case, case)), median)
        table.add(case, turn, median, statistics.fmean(seconds) * 1e6, ratio(median, base))
        summary[f"{case} median µs, turn {turn}"] = round(median, 1)
    lock_cost = [
        medians[(t, "insert, lock held")] - medians[(t, "insert")] for t in range(options.rounds)
    ]
    table.notes.append(
        f"the lock adds {min(lock_cost):.0f}-{max(lock_cost):.0f} µs to a write transaction "
        f"(one more statement, one round trip); {runs} transactions per case and turn"
    )
    for r in results:
        r["seconds"] = [round(s * 1e6, 1) for s in r["seconds"]]  # type: ignore[union-attr]
    print(table.render())
    for path in write_results(
        "record_writes_lock",
        quick=options.quick,
        settings={"runs": runs, "rounds": options.rounds},
        results=results,
        tables=[table],
        summary=summary,
        started=started,
    ):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
