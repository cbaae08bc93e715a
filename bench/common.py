"""What every benchmark shares: percentiles, the printed table, and the results files.

A benchmark prints one table and writes the same figures to ``bench/results/``:
``<name>.json`` (figures, settings, machine, time), ``<name>.txt`` and ``<name>.md``
(the table as printed). A ``--quick`` smoke run writes ``<name>-quick.*`` so it never
overwrites the figures of a real run.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parents[1]

#: Packages whose versions change the figures; recorded with every result.
_PACKAGES = ("carevault", "sqlalchemy", "cryptography", "uvicorn", "fastapi", "psycopg", "pyjwt")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline else math.nan


@dataclass
class Table:
    """A table printed as Markdown, which reads as well in a terminal as in a .md file."""

    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([_cell(cell) for cell in cells])

    def render(self) -> str:
        widths = [
            max(len(self.headers[i]), *(len(row[i]) for row in self.rows))
            for i in range(len(self.headers))
        ]

        def line(cells: Sequence[str]) -> str:
            padded = (
                cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                for i, cell in enumerate(cells)
            )
            return "| " + " | ".join(padded) + " |"

        rule = (
            "|"
            + "|".join("-" * (width + 1) + (":" if i else "-") for i, width in enumerate(widths))
            + "|"
        )
        parts = [f"### {self.title}", "", line(self.headers), rule]
        parts += [line(row) for row in self.rows]
        if self.notes:
            parts += ["", *(f"- {note}" for note in self.notes)]
        return "\n".join(parts)


def _cell(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def machine_info() -> dict[str, Any]:
    """Where the figures were measured: they mean little without it."""
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gib": _memory_gib(),
        # Other work on the machine skews the figures: the load when the run ended.
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "packages": {},
    }
    for package in _PACKAGES:
        try:
            info["packages"][package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def write_results(
    name: str,
    *,
    quick: bool,
    settings: dict[str, Any],
    results: list[dict[str, Any]],
    tables: Sequence[Table],
    summary: dict[str, Any],
    started: datetime,
) -> list[Path]:
    """Write ``<name>[-quick].{json,txt,md}``; return the paths written."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-quick" if quick else name
    finished = datetime.now(UTC)
    text = "\n\n".join(table.render() for table in tables) + "\n"
    heading = (
        f"# {name}{' (quick)' if quick else ''}\n\n"
        f"Measured {finished:%Y-%m-%d %H:%M} UTC in {(finished - started).total_seconds():.0f} s"
        f" on {_cpu_model()} ({os.cpu_count()} CPUs).\n\n"
    )
    document = {
        "benchmark": name,
        "quick": quick,
        "started": started.isoformat(),
        "finished": finished.isoformat(),
        "command": " ".join([Path(sys.executable).name, "-m", f"bench.{name}", *sys.argv[1:]]),
        "machine": machine_info(),
        "settings": settings,
        "summary": summary,
        "results": results,
    }
    paths = [RESULTS_DIR / f"{stem}.json", RESULTS_DIR / f"{stem}.txt", RESULTS_DIR / f"{stem}.md"]
    paths[0].write_text(json.dumps(document, indent=2, default=str) + "\n")
    paths[1].write_text(text)
    paths[2].write_text(heading + text)
    return paths


def now() -> datetime:
    return datetime.now(UTC)
