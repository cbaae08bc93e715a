"""How fast each console page renders in headless Chromium on the demo data set.

Runs the console (uvicorn on loopback, in this process) over a seeded data directory,
signs in as the first privacy officer of its demo logins, then visits every page in
rounds, reading the browser's Navigation Timing: ``server`` (request sent to first
byte) and ``rendered`` (navigation start to the end of the load event). The baseline
is the sign-in page, which reads nothing. Target: every page rendered under 300 ms.

    .venv/bin/carevault seed --home DIR        # the demo data set (20,000 patients)
    .venv/bin/python -m bench.console_pages --home DIR

Without ``--home`` it seeds ``--patients`` (default 2,000) into a temporary directory.
Needs Debian's chromium and chromium-driver (``scripts/setup --test``). Page visits
are recorded in the ledger like any other (the report page signs a checkpoint).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyotp
from tests.e2e.console.browser import PageCheck, chromium, click, fill, serving, wait_for_url

from bench.common import Table, now, percentile, ratio, write_results
from carevault.bootstrap import build_services, initialise
from carevault.config import load_settings
from carevault.fhir.query import parse_query
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller
from carevault.ledger.activity import catch_up
from carevault.sim.loader import LOGINS_FILE, seed_clinic_group
from carevault.web.app import create_app

NAME = "console_pages"
TARGET_MS = 300.0
BASELINE = "/console/sign-in"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.console_pages", description=__doc__)
    parser.add_argument("--home", type=Path, help="A seeded data directory (SQLite).")
    parser.add_argument("--patients", type=int, default=2000, help="Seeded without --home.")
    parser.add_argument("--rounds", type=int, default=5, help="Visits of each page.")
    parser.add_argument("--quick", action="store_true", help="200 patients, 2 rounds.")
    options = parser.parse_args(argv)
    if options.quick:
        options.patients, options.rounds = 200, 2
    return options


def officer_login(home: Path) -> tuple[str, str, str]:
    """Username, password and TOTP secret of the first privacy officer seeded."""
    lines = (home / LOGINS_FILE).read_text().splitlines()
    password = next(line for line in lines if line.startswith("# password")).split(": ", 1)[1]
    for line in lines:
        if not line.startswith("#") and "\tprivacy_officer\t" in line:
            username, _, secret, *_ = line.split("\t")
            return username, password, secret
    raise SystemExit("no privacy officer among the demo logins")


def measure(home: Path, rounds: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    settings = load_settings(home=home, checkpoint_seconds=0)
    initialise(settings)  # a data directory seeded by an older version gets the new tables
    services = build_services(settings)
    # As `carevault serve` does: counting the ledger for the activity chart starts with the
    # server, in the background; time it, then measure the pages on a server that is up.
    counting = time.perf_counter()
    catch_up(services.audit_ledger.store, services.engine, services.now_us())
    catch_up_seconds = time.perf_counter() - counting
    try:
        query = parse_query(
            RESOURCE_TYPES["Patient"],
            [("_count", "1")],
            strict=True,
            zone=ZoneInfo(settings.timezone),
            default_count=1,
            max_count=1,
        )
        found, _ = services.gate.search(Caller("system:bench", purpose="HOPERAT"), query)
        pages = [
            BASELINE,
            "/console/dashboard",
            "/console/containment",
            "/console/staff",
            "/console/break-glass",
            "/console/patients",
            f"/console/patients/{found[0].head.resource_id}",
            "/console/account",
            "/console/alerts",
        ]
        facts = {
            "activity_catch_up_s": round(catch_up_seconds, 2),
            "audit_entries": services.audit_ledger.store.head()[0],
            "staff": len(services.accounts.all()),
        }
        username, password, secret = officer_login(home)
        with (
            tempfile.TemporaryDirectory() as downloads,
            chromium(Path(downloads)) as driver,
            serving(create_app(settings, services)) as base,
        ):
            check = PageCheck(driver, Path(downloads), "bench")
            check.visit(base, "/console/sign-in")
            fill(driver, "#username", username)
            fill(driver, "#password", password)
            fill(driver, "#totp", pyotp.TOTP(secret).now())
            click(driver, "form[action='/console/sign-in'] button[type=submit]")
            wait_for_url(driver, "/console/dashboard", 30)
            results: list[dict[str, Any]] = []
            for round_number in range(rounds):
                for path in pages:
                    check.visit(base, path)
                    results.append({**check.timing(), "round": round_number, "path": path})
                print(f"  round {round_number + 1}/{rounds} done", flush=True)
    finally:
        services.close()
    return results, facts


def summarise(
    results: list[dict[str, Any]], facts: dict[str, Any], options: argparse.Namespace
) -> tuple[list[Table], dict[str, Any]]:
    paths = list(dict.fromkeys(item["path"] for item in results))

    def median(path: str, key: str) -> float:
        return percentile([r[key] for r in results if r["path"] == path], 50)

    base = median(BASELINE, "rendered_ms")
    table = Table(
        f"Console pages, {facts['audit_entries']:,} ledger entries, {facts['staff']} staff "
        f"({options.rounds} visits each)",
        ["page", "rendered p50 (ms)", "rendered p90 (ms)", "server p50 (ms)", "× sign-in page"],
    )
    slowest = 0.0
    for path in paths:
        p50 = median(path, "rendered_ms")
        slowest = max(slowest, p50)
        table.add(
            path.split("/patients/")[0] + ("/patients/<id>" if "/patients/" in path else ""),
            p50,
            percentile([r["rendered_ms"] for r in results if r["path"] == path], 90),
            median(path, "server_ms"),
            ratio(p50, base),
        )
    table.notes.append(
        f"Counting the ledger for the activity chart when the server starts (in the background, "
        f"as `carevault serve` does) took {facts['activity_catch_up_s']} s for "
        f"{facts['audit_entries']:,} entries; the pages were measured after it."
    )
    over = [p for p in paths if median(p, "rendered_ms") >= TARGET_MS]
    table.notes.append(
        f"Target: under {TARGET_MS:.0f} ms rendered. Slowest median {slowest:.0f} ms; "
        f"{len(over)} page(s) at or over the target{': ' + ', '.join(over) if over else ''}."
    )
    return [table], {"slowest_p50_ms": slowest, "over_target": over, **facts}


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    started = now()
    with tempfile.TemporaryDirectory(prefix="carevault-bench-") as scratch:
        home = options.home
        if home is None:
            home = Path(scratch) / "home"
            settings = load_settings(home=home)
            initialise(settings)
            services = build_services(settings)
            try:
                seed_clinic_group(services, patients=options.patients, seed=7)
            finally:
                services.close()
        results, facts = measure(home, options.rounds)
    tables, summary = summarise(results, facts, options)
    print("\n\n".join(table.render() for table in tables))
    settings = {**vars(options), "home": str(options.home) if options.home else None}
    for path in write_results(
        NAME,
        quick=options.quick,
        settings=json.loads(json.dumps(settings, default=str)),
        results=results,
        tables=tables,
        summary=summary,
        started=started,
    ):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
