"""Bulk Data exports awaiting approval, running or done: the privacy officer's desk."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from carevault.cli.common import HomeOption, OfficerOption, TotpOption, app, as_officer, fail
from carevault.cli.common import open_services as _open_services
from carevault.cli.terminal import cell, echo
from carevault.export.model import Status as ExportStatus

if TYPE_CHECKING:
    from carevault.bootstrap import Services
    from carevault.export.model import Job
    from carevault.export.service import ExportService

export_app = typer.Typer(
    help="Bulk Data exports ($export): list, show, approve, deny, cancel (privacy officer)."
)
app.add_typer(export_app, name="export")

JsonOption = Annotated[bool, typer.Option("--json", help="As JSON.")]


def _exports(services: Services) -> ExportService:
    if services.exports is None:
        raise fail("bulk export is not available here")
    return services.exports


def _outcome(job: Job, as_json: bool, line: str) -> None:
    """What an officer's action left: the whole job as JSON, or one line."""
    from carevault.export.model import as_dict

    if as_json:
        _print(as_dict(job), True)
    else:
        echo(line)


def _print(shown: dict[str, object], as_json: bool) -> None:
    if as_json:
        echo(json.dumps(shown, indent=1))
        return
    for key, value in shown.items():
        echo(f"{key:>16}: {cell(value)}")


@export_app.command("list")
def export_list(
    # A choice: a status that is not one is refused with the choices (exit 2), not a
    # traceback.
    status: Annotated[ExportStatus | None, typer.Option(help="Only jobs in this status.")] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Every export job, oldest first."""
    from carevault.export.model import as_dict

    with _open_services(home) as services:
        jobs = _exports(services).jobs.all([status] if status else None)
    found = [as_dict(job) for job in jobs]
    if as_json:
        echo(json.dumps(found, indent=1))
        return
    if not found:
        echo("no export jobs")
    for item in found:
        approvals = f"{len(item['approvals'])}/{item['approvals_needed']}"
        echo(
            f"{item['id']} {item['status']:<9} {item['level']:<7} client {cell(item['client'])} "
            f"approvals {approvals} patients {item['patients_done']}/{item['patients_total']} "
            f"requested {item['requested']}"
        )


@export_app.command("show")
def export_show(job_id: str, as_json: JsonOption = False, home: HomeOption = None) -> None:
    """One export job: what it asks for, who approved it, how far it got."""
    from carevault.export.model import as_dict

    with _open_services(home) as services:
        exports = _exports(services)
        job = exports.job(job_id)
        files = exports.output(job)
    shown = as_dict(job) | {
        "files": [{"name": f.name, "type": f.resource_type, "count": f.count} for f in files]
    }
    _print(shown, as_json)


@export_app.command("approve")
def export_approve(
    job_id: str,
    officer: OfficerOption,
    totp: TotpOption = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Approve an export (a system-level export needs two different officers)."""
    with _open_services(home) as services:
        job = _exports(services).approve(as_officer(officer, totp), job_id)
    _outcome(
        job,
        as_json,
        f"export {job.job_id}: approval {len(job.approvals)} of {job.approvals_needed}; "
        f"now {job.status}",
    )


@export_app.command("deny")
def export_deny(
    job_id: str,
    reason: Annotated[str, typer.Option(help="Why (recorded in the ledger).")],
    officer: OfficerOption,
    totp: TotpOption = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Refuse an export awaiting approval."""
    with _open_services(home) as services:
        job = _exports(services).deny(as_officer(officer, totp), job_id, reason)
    _outcome(job, as_json, f"export {job.job_id}: denied")


@export_app.command("cancel")
def export_cancel(
    job_id: str,
    reason: Annotated[str, typer.Option(help="Why (recorded in the ledger).")],
    officer: OfficerOption,
    totp: TotpOption = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Stop an export and delete its files and key."""
    with _open_services(home) as services:
        exports = _exports(services)
        by = exports.officer(as_officer(officer, totp), f"cancel export {job_id}")
        job = exports.cancel(job_id, by, reason, "cli")
    _outcome(job, as_json, f"export {job.job_id}: cancelled, files deleted")


def print_exports(services: Services) -> None:
    """The ``carevault status`` lines: exports are the most visible thing here."""
    from carevault.export.model import Status

    exports = services.exports
    if exports is None:
        return
    live = exports.jobs.all([Status.PENDING, Status.APPROVED, Status.RUNNING, Status.COMPLETED])
    counts = exports.jobs.counts()
    echo(
        "Bulk exports: "
        + (", ".join(f"{count} {status}" for status, count in sorted(counts.items())) or "none")
    )
    for job in live:
        echo(f"  {job.job_id} {job.status} {job.level} by {job.client_id}: {job.progress(None)}")
