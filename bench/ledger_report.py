"""The ledger benchmark's figures: a table on stdout, JSON and Markdown on disk."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import create_engine, text


@dataclass(frozen=True)
class Figure:
    """One reported number, with its target and how it compares with its baseline."""

    name: str
    value: float
    unit: str
    target: str = ""
    ratio: float | None = None  # to the baseline named in ``note``
    passed: bool | None = None
    note: str = ""

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: ""}[self.passed]


def _format(value: float) -> str:
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.4f}"


def _rows(figures: list[Figure]) -> list[list[str]]:
    return [
        [
            figure.name,
            _format(figure.value),
            figure.unit,
            figure.target,
            "" if figure.ratio is None else f"{figure.ratio:.2f}x",
            figure.verdict,
            figure.note,
        ]
        for figure in figures
    ]


HEADER = ["figure", "value", "unit", "target", "ratio", "result", "baseline / note"]


def table(figures: list[Figure]) -> str:
    rows = [HEADER, *_rows(figures)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(HEADER))]
    lines = []
    for number, row in enumerate(rows):
        cells = [
            cell.rjust(width) if column == 1 else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def machine(pg_url: str | None) -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {
        "timestamp_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": sqlalchemy.__version__,
        "load_average_at_start": " ".join(f"{value:.2f}" for value in os.getloadavg()),
        "command": " ".join([Path(sys.executable).name, "-m", "bench.ledger", *sys.argv[1:]]),
    }
    if pg_url is not None:
        engine = create_engine(pg_url)
        with engine.connect() as connection:
            info["postgresql"] = connection.execute(text("SHOW server_version")).scalar()
            for setting in ("fsync", "synchronous_commit", "wal_sync_method", "shared_buffers"):
                info[f"postgresql_{setting}"] = connection.execute(text(f"SHOW {setting}")).scalar()
        engine.dispose()
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def write(
    directory: Path,
    stem: str,
    info: dict[str, Any],
    config: dict[str, Any],
    figures: list[Figure],
    results: dict[str, Any],
    notes: list[str],
) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / f"{stem}.json"
    md_path = directory / f"{stem}.md"
    document = {
        "machine": info,
        "config": config,
        "figures": [asdict(figure) | {"result": figure.verdict} for figure in figures],
        "results": results,
        "notes": notes,
    }
    json_path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    lines = [
        "# Ledger benchmark",
        "",
        f"Run {info['timestamp_utc']}: `{info['command']}`",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in info.items() if key != "command"),
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join("---" for _ in HEADER) + "|",
        *("| " + " | ".join(row) + " |" for row in _rows(figures)),
        "",
        "## Notes",
        "",
        *(f"- {note}" for note in notes),
        "",
        f"Configuration: `{json.dumps(config)}`. Every measurement is in `{json_path.name}`.",
        "",
    ]
    md_path.write_text("\n".join(lines))
    return json_path, md_path
