"""The long API fuzz run (not in CI): Schemathesis over every route of the OpenAPI
document, signed in as a physician, many examples per operation, on SQLite and
PostgreSQL. Counts 5xx answers, answers that left no ledger entry, and hangs (an answer
slower than 30 s). Writes bench/results/fuzz_api.{md,json}.

    .venv/bin/python -m bench.fuzz_api [--examples 40] [--backends sqlite,postgres] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import PG_ADMIN_URL, make_settings
from tests.support.client import FhirTestClient
from tests.support.fuzz import FuzzReport, fuzz_app
from tests.support.staff import make_staff

from bench.common import Table, machine_info
from carevault.bootstrap import build_services
from carevault.db import temporary_database
from carevault.domain.roles import Role
from carevault.web.app import create_app

RESULTS = Path(__file__).parent / "results"


@contextmanager
def database(backend: str) -> Iterator[str | None]:
    if backend == "sqlite":
        yield None
        return
    url = os.environ.get("CAREVAULT_BENCH_PG_URL", PG_ADMIN_URL)
    with temporary_database(url, "carevault_fuzz") as created:
        yield created


def run(backend: str, examples: int) -> tuple[FuzzReport, float]:
    with tempfile.TemporaryDirectory(prefix="carevault-fuzz-") as folder, database(backend) as url:
        settings = make_settings(Path(folder) / "home", url)
        services = build_services(settings, create_keys=True, migrate=True)
        try:
            app = create_app(settings, services)
            with FhirTestClient(app) as client:
                client.put_json(
                    "/fhir/Organization/clinic-a",
                    {"resourceType": "Organization", "id": "clinic-a", "name": "Clinic A"},
                )
            staff = make_staff(services, Role.PHYSICIAN, ["clinic-a"])
            started = time.monotonic()
            report = fuzz_app(services, app, {"authorization": f"Bearer {staff.token}"}, examples)
            return report, time.monotonic() - started
        finally:
            services.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=40, help="examples per operation")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--quick", action="store_true", help="5 examples, SQLite only")
    arguments = parser.parse_args()
    examples, backends = arguments.examples, arguments.backends.split(",")
    if arguments.quick:
        examples, backends = 5, ["sqlite"]
    name = "fuzz_api-quick" if arguments.quick else "fuzz_api"
    table = Table(
        f"API fuzz: every route, {examples} examples per operation, signed in",
        ["backend", "operations", "requests", "5xx", "no ledger entry", "hangs", "slowest s",
         "seconds"],
    )  # fmt: skip
    raw: dict[str, object] = {}
    for backend in backends:
        report, seconds = run(backend, examples)
        table.add(
            backend,
            report.operations,
            report.requests,
            len(report.server_errors),
            sum(report.unrecorded.values()),
            len(report.hangs),
            report.slowest_seconds,
            seconds,
        )
        raw[backend] = {
            "statuses": {str(k): v for k, v in sorted(report.statuses.items())},
            "server_errors": report.server_errors,
            "unrecorded": dict(report.unrecorded),
            "hangs": report.hangs,
            "seconds": seconds,
        }
    table.notes.append(
        "answers by status: "
        + "; ".join(f"{b}: {r['statuses']}" for b, r in raw.items() if isinstance(r, dict))
    )
    rendered = table.render()
    print(rendered)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text(rendered + "\n")
    (RESULTS / f"{name}.json").write_text(
        json.dumps({"machine": machine_info(), "examples": examples, "runs": raw}, indent=2)
    )


if __name__ == "__main__":
    main()
