"""What the register of revocations beside the keyring (``keys.revocations``) costs.

A session's state is judged against the register each time it is read from the database
(``Sessions._recorded``: at most every ``check_seconds`` per session and process, and
at each token asked for by a client app): that check must cost a ``stat``, not a read of
the file. Measured in this process, on a register of N live lines (sessions revoked):

- µs per check when the file has not changed (``RevocationRegister.session``: a
  ``stat``, a lock and two dictionary lookups), against a bare ``os.stat`` of the file;
- µs for a check that finds one line appended by another process (read from where it
  stopped), and ms for one that finds the file rewritten (read whole);
- ms per append (the ``fsync`` a revocation now waits for, inside its transaction).

    .venv/bin/python -m bench.revocations_check            # about 20 seconds
    .venv/bin/python -m bench.revocations_check --quick    # a few seconds
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Table, now, write_results
from carevault.keys.revocations import RevocationRegister, revoked_line

NAME = "revocations_check"
HOUR_US = 3600 * 1_000_000
NOW_US = 1_800_000_000_000_000


def _clock() -> int:
    return NOW_US


def _median_us(run: Any, repeat: int) -> float:
    """The median of ``repeat`` timings of ``run()``, in µs."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter_ns()
        run()
        times.append((time.perf_counter_ns() - started) / 1000)
    return statistics.median(times)


def measure(folder: Path, lines: int, repeat: int) -> dict[str, float]:
    path = folder / f"revocations-{lines}"
    writer = RevocationRegister(path, _clock)
    writer.append(revoked_line(f"s{n}", NOW_US, NOW_US + HOUR_US) for n in range(lines))
    if lines == 0:
        writer.append([revoked_line("seed", NOW_US, NOW_US + HOUR_US)])
    reader = RevocationRegister(path, _clock)
    reader.session("warm")
    # Unchanged file: a batch of checks per timing, as a server makes them.
    batch = 1000
    check_us = _median_us(lambda: [reader.session("s-live") for _ in range(batch)], repeat)
    stat_us = _median_us(lambda: [os.stat(path) for _ in range(batch)], repeat)
    appended = []
    append_us = []
    for n in range(repeat):
        started = time.perf_counter_ns()
        writer.append([revoked_line(f"new{n}", NOW_US, NOW_US + HOUR_US)])
        append_us.append((time.perf_counter_ns() - started) / 1000)
        started = time.perf_counter_ns()
        reader.session("s-live")
        appended.append((time.perf_counter_ns() - started) / 1000)
    rereads = []
    for _ in range(max(3, repeat // 10)):
        fresh = RevocationRegister(path, _clock)
        started = time.perf_counter_ns()
        fresh.session("s-live")
        rereads.append((time.perf_counter_ns() - started) / 1000)
    return {
        "lines": lines,
        "bytes": path.stat().st_size,
        "check_us": check_us / batch,
        "stat_us": stat_us / batch,
        "appended_check_us": statistics.median(appended),
        "whole_read_ms": statistics.median(rereads) / 1000,
        "append_ms": statistics.median(append_us) / 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args()
    started = now()
    sizes = [0, 1_000, 10_000] if args.quick else [0, 1_000, 10_000, 50_000]
    repeat = 20 if args.quick else 200
    table = Table(
        "The register's check, per session state read",
        [
            "live lines",
            "file",
            "check, unchanged (µs)",
            "bare stat (µs)",
            "check after 1 line appended (µs)",
            "whole read (ms)",
            "append + fsync (ms)",
        ],
        notes=[
            "A check is made once per session state read from the database (at most every "
            "check_seconds = 0.25 s per session and process), never per cached request.",
            "The file is read only when its inode, size or time changed; an append is "
            "read from where the last read stopped.",
        ],
    )
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for lines in sizes:
            figures = measure(Path(folder), lines, repeat)
            results.append(figures)
            table.add(
                f"{lines:,}",
                f"{figures['bytes'] / 1024:,.0f} KiB",
                f"{figures['check_us']:.2f}",
                f"{figures['stat_us']:.2f}",
                f"{figures['appended_check_us']:.1f}",
                f"{figures['whole_read_ms']:.1f}",
                f"{figures['append_ms']:.2f}",
            )
    print(table.render())
    write_results(
        NAME,
        quick=args.quick,
        settings={"sizes": sizes, "repeat": repeat},
        results=results,
        tables=[table],
        summary={"check_us": {str(item["lines"]): item["check_us"] for item in results}},
        started=started,
    )


if __name__ == "__main__":
    main()
