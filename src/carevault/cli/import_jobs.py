"""``$import`` jobs sent by integration clients: ``carevault import-jobs``."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from carevault.cli.common import HomeOption, app, fail
from carevault.cli.common import open_services as _open_services
from carevault.cli.terminal import cell, echo
from carevault.importjobs.model import Status as ImportStatus


@app.command("import-jobs")
def import_jobs(
    # A choice: a status that is not one is refused with the choices (exit 2), not a
    # traceback.
    status: Annotated[ImportStatus | None, typer.Option(help="Only jobs in this status.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="As JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """Every $import job, oldest first: whose, its status, how far it got."""

    with _open_services(home) as services:
        imports = services.imports
        if imports is None:
            raise fail("$import is not available here")
        found: list[dict[str, Any]] = []
        for job in imports.jobs.all([status] if status else None):
            report = imports.report(job)
            found.append(
                {
                    "id": job.job_id,
                    "status": str(job.status),
                    "client": job.client_id,
                    "lines_done": report.lines_done,
                    "lines_total": job.lines_total,
                    "accepted": report.accepted,
                    "rejected": report.rejected,
                    "requested_us": job.requested_us,
                    "finished_us": job.finished_us,
                    "error": job.error,
                }
            )
    if as_json:
        echo(json.dumps(found, indent=1))
        return
    if not found:
        echo("no import jobs")
    for item in found:
        echo(
            f"{item['id']} {item['status']:<9} client {cell(item['client'])} lines "
            f"{item['lines_done']}/{item['lines_total']} accepted {item['accepted']} "
            f"rejected {item['rejected']}" + (f" ({cell(item['error'])})" if item["error"] else "")
        )
