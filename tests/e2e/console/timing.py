"""The render-time report of the console's pages, as the browser measured them.

Navigation Timing, per page visit: ``server_ms`` is ``responseStart - requestStart``
(the request sent to the first byte of the answer: the server's share), ``rendered_ms``
is ``loadEventEnd - startTime`` (the whole render, to the end of the load event) and
``content_loaded_ms`` is ``domContentLoadedEventEnd - startTime``. Each visit carries
the machine's load average, since on a shared machine the wall clock says as much about
the neighbours as about the page. Reported, never asserted: the target (under 300 ms
rendered on the demo data set) is a figure to read, not a test to flake.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

TARGET_MS = 300.0
#: The browser tests' report, beside their screenshots (ignored by git, so that a test run
#: leaves the work tree as it found it). To record a run beside the benchmarks' results:
#: ``CAREVAULT_CONSOLE_RENDER=bench/results/console_render-tests``.
REPORT = Path(
    os.environ.get(
        "CAREVAULT_CONSOLE_RENDER",
        str(Path(__file__).resolve().parent / "output" / "console_render-tests"),
    )
)

#: The Navigation Timing entry of the page now shown, as a plain object.
NAVIGATION_ENTRY = (
    "const e = performance.getEntriesByType('navigation')[0];return e ? e.toJSON() : null;"
)


def load_average() -> float:
    """The one-minute load average of the machine (0 where the system has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return 0.0


def figures(entry: dict[str, Any]) -> dict[str, Any]:
    """What the report keeps of one Navigation Timing entry."""
    return {
        "server_ms": round(entry["responseStart"] - entry["requestStart"], 1),
        "rendered_ms": round(entry["loadEventEnd"] - entry["startTime"], 1),
        "interactive_ms": round(entry["domInteractive"] - entry["startTime"], 1),
        "content_loaded_ms": round(entry["domContentLoadedEventEnd"] - entry["startTime"], 1),
        "bytes": entry.get("transferSize") or entry.get("encodedBodySize"),
        "load_average": load_average(),
    }


def render_report(label: str, timings: list[dict[str, Any]]) -> str:
    """The timings as a Markdown table: page, server ms, rendered ms, load average."""
    rows = [
        f"| {item.get('page', '')} | `{item['path']}` | {item['server_ms']} | "
        f"{item['content_loaded_ms']} | {item['rendered_ms']} | {item['load_average']} |"
        for item in timings
    ]
    slowest = max((item["rendered_ms"] for item in timings), default=0)
    over = sum(1 for item in timings if item["rendered_ms"] >= TARGET_MS)
    return "\n".join(
        [
            f"## Console pages in headless Chromium ({label})",
            "",
            "Navigation Timing of each visit: `server` is request sent to first byte, "
            "`DOM loaded` and `rendered` are from navigation start to the end of "
            "DOMContentLoaded and of the load event; `load` is the one-minute load average "
            f"then. Reported, not asserted (target: under {TARGET_MS:.0f} ms rendered).",
            "",
            "| page | path | server (ms) | DOM loaded (ms) | rendered (ms) | load |",
            "|---|---|---:|---:|---:|---:|",
            *rows,
            "",
            f"Slowest: {slowest} ms; {over} of {len(timings)} visits at or over the target.",
            "",
        ]
    )


def write_render_report(label: str, timings: list[dict[str, Any]], directory: Path) -> Path:
    """Add this run's timings under ``label`` to ``<REPORT>.{json,md}`` (other labels,
    e.g. the other backend of the same run, are kept) and return the Markdown file."""
    json_path = REPORT.with_suffix(".json")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        runs: dict[str, Any] = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        runs = {}
    runs[label] = timings
    json_path.write_text(json.dumps(runs, indent=2, sort_keys=True), encoding="utf-8")
    text = "# Console render times, from the browser tests\n\n" + "\n".join(
        render_report(name, items) for name, items in sorted(runs.items())
    )
    markdown = REPORT.with_suffix(".md")
    markdown.write_text(text, encoding="utf-8")
    (directory / f"timings-{label}.md").write_text(render_report(label, timings), encoding="utf-8")
    return markdown
