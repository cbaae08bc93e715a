"""Soak: a mixed clinic load against a real ``carevault serve`` for a long while (30
minutes by default; not in CI), sampling every minute the server's memory, its open
files, the database size on disk and the latency percentiles of that minute's answers.
Writes bench/results/soak.{md,json,png}; growth that does not level off shows in the
chart and in the last-half/first-half ratios of the table.

    .venv/bin/python -m bench.soak [--minutes 30] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.conftest import make_settings
from tests.support.mixed_load import MixedLoad, Observed, prepare_home
from tests.support.server import environment, running_server

from bench.common import Table, machine_info, percentile

RESULTS = Path(__file__).parent / "results"


@dataclass
class Sample:
    minute: int
    rss_mib: float
    open_files: int
    database_mib: float
    answers: int
    p50_ms: float
    p95_ms: float
    p99_ms: float


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def database_mib(home: Path) -> float:
    return sum(path.stat().st_size for path in home.rglob("*.db*") if path.is_file()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--sample-seconds", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true", help="two minutes, 20 s samples")
    arguments = parser.parse_args()
    minutes, every = arguments.minutes, arguments.sample_seconds
    if arguments.quick:
        minutes, every = 2.0, 20.0
    name = "soak-quick" if arguments.quick else "soak"
    with tempfile.TemporaryDirectory(prefix="carevault-soak-") as folder:
        home = Path(folder) / "home"
        cast = prepare_home(make_settings(home))
        env = environment(
            home,
            None,
            {
                "CAREVAULT_DIRECT_GRANT": "true",
                "CAREVAULT_ARGON2_MEMORY_KIB": "8192",
                "CAREVAULT_ARGON2_TIME_COST": "1",
                "CAREVAULT_DETECT_RESPONSES": "high=raise,medium=raise",
                "CAREVAULT_RELEASE_BUDGET": "front_desk=1000000/1000000",
            },
        )
        observed = Observed()
        samples: list[Sample] = []
        with running_server(env, Path(folder), start_seconds=600) as server:
            pid = server.process.pid
            load = MixedLoad(
                server.url, cast.desk_token, observed, seed=30, signers=cast.signers, pace=0.05
            ).start()
            started = time.monotonic()
            try:
                for minute in range(1, int(minutes * 60 / every) + 1):
                    window_start = time.monotonic()
                    time.sleep(max(0.0, started + minute * every - time.monotonic()))
                    with observed.lock:
                        window = [s for at, s in observed.latencies if at >= window_start]
                    sample = Sample(
                        minute,
                        rss_mib(pid),
                        open_files(pid),
                        database_mib(home),
                        len(window),
                        percentile([s * 1000 for s in window], 50) if window else float("nan"),
                        percentile([s * 1000 for s in window], 95) if window else float("nan"),
                        percentile([s * 1000 for s in window], 99) if window else float("nan"),
                    )
                    samples.append(sample)
                    print(json.dumps(asdict(sample)), flush=True)
                    # Written after every sample: a run cut short still leaves its figures.
                    write(name, samples, observed, minute * every / 60, every, quiet=True)
            finally:
                load.finish()
        write(name, samples, observed, minutes, every)


def write(
    name: str,
    samples: list[Sample],
    observed: Observed,
    minutes: float,
    every: float,
    *,
    quiet: bool = False,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = Table(
        f"Soak: {minutes:g} minutes of mixed load, sampled every {every:g} s",
        [
            "sample",
            "RSS MiB",
            "open files",
            "database MiB",
            "answers",
            "p50 ms",
            "p95 ms",
            "p99 ms",
        ],
    )
    for sample in samples:
        table.add(
            sample.minute,
            sample.rss_mib,
            sample.open_files,
            sample.database_mib,
            sample.answers,
            sample.p50_ms,
            sample.p95_ms,
            sample.p99_ms,
        )
    half = max(1, len(samples) // 2)
    first, last = samples[:half], samples[half:] or samples[-1:]

    def growth(attribute: str) -> float:
        before = sum(getattr(s, attribute) for s in first) / len(first)
        after = sum(getattr(s, attribute) for s in last) / len(last)
        return after / before if before else float("nan")

    table.notes += [
        f"last half / first half: RSS {growth('rss_mib'):.2f}, open files "
        f"{growth('open_files'):.2f}, p95 {growth('p95_ms'):.2f}",
        f"statuses: {dict(observed.statuses)}; 5xx: "
        f"{sum(n for code, n in observed.statuses.items() if code >= 500)}",
        "the database grows with the data written (every answer is a ledger entry); "
        "memory, open files and latency should level off",
    ]
    rendered = table.render()
    if not quiet:
        print(rendered)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text(rendered + "\n")
    (RESULTS / f"{name}.json").write_text(
        json.dumps(
            {
                "machine": machine_info(),
                "samples": [asdict(s) for s in samples],
                "statuses": {str(k): v for k, v in observed.statuses.items()},
            },
            indent=2,
        )
    )
    figure, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    x = [s.minute * every / 60 for s in samples]
    for axis, values, label in (
        (axes[0][0], [s.rss_mib for s in samples], "server RSS (MiB)"),
        (axes[0][1], [s.open_files for s in samples], "open files"),
        (axes[1][0], [s.database_mib for s in samples], "database on disk (MiB)"),
    ):
        axis.plot(x, values, marker="o")
        axis.set_title(label)
        axis.set_ylim(bottom=0)
    for values, label in (
        ([s.p50_ms for s in samples], "p50"),
        ([s.p95_ms for s in samples], "p95"),
        ([s.p99_ms for s in samples], "p99"),
    ):
        axes[1][1].plot(x, values, marker="o", label=label)
    axes[1][1].set_title("latency (ms)")
    axes[1][1].legend()
    axes[1][1].set_ylim(bottom=0)
    for axis in axes[1]:
        axis.set_xlabel("minutes")
    figure.tight_layout()
    figure.savefig(RESULTS / f"{name}.png", dpi=90)
    plt.close(figure)


if __name__ == "__main__":
    main()
