"""The audit ledger, its witness, and the break-the-glass review queue."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from carevault.cli.common import (
    HomeOption,
    app,
    fail,
    open_services,
    operator,
    unchecked_settings_for,
)
from carevault.cli.terminal import cell, echo

if TYPE_CHECKING:
    from carevault.bootstrap import Services
    from carevault.ledger.service import Ledger


audit_app = typer.Typer(help="The tamper-evident audit ledger: verify, checkpoint, export, report.")
witness_app = typer.Typer(help="Run a witness that cosigns checkpoints (C2SP tlog-witness).")
glass_app = typer.Typer(help="Break-the-glass grants: the privacy officer's review queue.")
app.add_typer(audit_app, name="audit")
app.add_typer(witness_app, name="witness")
app.add_typer(glass_app, name="break-glass")

LedgerChoice = Annotated[
    str, typer.Option("--ledger", help="audit, unwrap or all.", show_default=True)
]


def _chosen(services: Services, name: str) -> list[Ledger]:
    if name == "all":
        return services.ledgers()
    if name not in ("audit", "unwrap"):
        typer.secho("--ledger is audit, unwrap or all", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    return [services.audit_ledger if name == "audit" else services.unwrap_ledger]


@audit_app.command("verify")
def audit_verify(home: HomeOption = None, ledger: LedgerChoice = "all") -> None:
    """Recompute every ledger from its entries; check tiles, head, checkpoints, witnesses.

    Exits 1 and names the first entry or checkpoint that does not match.
    """
    failed = False
    with open_services(home) as services:
        for chosen in _chosen(services, ledger):
            report = services.verify_runs.verify(chosen, operator())
            if report.ok:
                echo(
                    f"{report.ledger}: OK - {report.entries:,} entries, "
                    f"{report.checkpoints} checkpoints, {report.witnesses} witnesses agree"
                )
            else:
                failed = True
                typer.secho(f"{report.ledger}: MISMATCH", fg=typer.colors.RED, err=True)
                for problem in report.problems:
                    typer.secho(f"  - {problem}", fg=typer.colors.RED, err=True)
    if failed:
        raise typer.Exit(1)


@audit_app.command("checkpoint")
def audit_checkpoint(
    home: HomeOption = None,
    ledger: LedgerChoice = "all",
    reason: Annotated[str, typer.Option(help="Why (recorded with it).")] = "on demand",
) -> None:
    """Sign a checkpoint of the ledger now and hand it to the witnesses."""
    with open_services(home) as services:
        for chosen in _chosen(services, ledger):
            made = chosen.checkpoints.make(reason)
            witnessed = ", ".join(made.witnessed_by) or "no witness"
            echo(f"{chosen.store.name}: size {made.size}, cosigned by {witnessed}")
            echo(made.note)


@audit_app.command("vkey")
def audit_vkey(home: HomeOption = None) -> None:
    """The verifier keys of the ledgers and witnesses (for the standalone verifier)."""
    with open_services(home) as services:
        for chosen in services.ledgers():
            echo(f"{chosen.store.name}: {chosen.checkpoints.signer.vkey.render()}")
        for witness in services.audit_ledger.witnesses:
            echo(f"witness: {witness.verifier_key().render()}")


@audit_app.command("log-keys")
def audit_log_keys(home: HomeOption = None) -> None:
    """The ledgers' verifier keys, before the first `init`: what a witness needs to start.

    Makes the ledger signing key if the data directory has none yet (0600), and prints
    the audit and unwrap ledgers' vkeys as `audit vkey` does. Production refuses to start
    without a witness, and the witness needs these keys to start: this breaks the circle.
    """
    from carevault.keys.files import ed25519_key
    from carevault.ledger.checkpoints import CheckpointSigner
    from carevault.ledger.schema import AUDIT_LEDGER
    from carevault.ledger.unwrap import UNWRAP_LEDGER

    # Read unchecked on purpose: the one thing read or written is the ledger signing
    # key, and the witness settings that production requires cannot exist yet.
    settings = unchecked_settings_for(home)
    key = ed25519_key(settings.resolved_ledger_key_path, create=True)
    for ledger_name in (AUDIT_LEDGER, UNWRAP_LEDGER):
        signer = CheckpointSigner(f"{settings.ledger_origin}/{ledger_name}", key)
        echo(f"{ledger_name}: {signer.vkey.render()}")


@audit_app.command("export")
def audit_export(
    form: Annotated[str, typer.Option("--format", help="fhir-ndjson, syslog or csv.")],
    home: HomeOption = None,
    ledger: Annotated[str, typer.Option(help="audit or unwrap.")] = "audit",
    output: Annotated[Path | None, typer.Option(help="File to write (default: stdout).")] = None,
) -> None:
    """Export ledger entries for a SIEM (RFC 5424 syslog), a spreadsheet or FHIR tools."""
    from carevault.ledger.export import EXPORT_FORMATS, export_lines

    if form not in EXPORT_FORMATS or ledger not in ("audit", "unwrap"):
        typer.secho(
            f"--format is one of {', '.join(EXPORT_FORMATS)}", fg=typer.colors.RED, err=True
        )
        raise typer.Exit(2)
    if ledger == "unwrap" and form != "csv":
        form = "csv"
    with open_services(home) as services:
        (chosen,) = _chosen(services, ledger)
        entries = chosen.store.entries()
        lines = (
            export_lines(entries, form)
            if ledger == "audit"
            else (data.decode() for _, data in entries)
        )
        handle = (
            os.fdopen(
                os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8"
            )
            if output
            else sys.stdout
        )
        try:
            for line in lines:
                handle.write(line + "\n")
        finally:
            if output:
                handle.close()


@audit_app.command("report")
def audit_report(
    patient: Annotated[str, typer.Option(help="The patient's id (Patient/<id>).")],
    home: HomeOption = None,
) -> None:
    """A patient's access report: every access to their record, each with its proof.
    Recorded as a read of the ledger by whoever runs it (``cli:<user>``), naming the
    patient and what the report shows was touched, as the API's and the console's are:
    an incident's scope counts it (the second review of stop 61)."""
    import json

    from carevault.fhir.outcome import FhirError
    from carevault.gate import Caller
    from carevault.ledger.trail import AuditUnavailable
    from carevault.web.audit_routes import build_access_report

    with open_services(home) as services:
        patient_id = patient.removeprefix("Patient/")
        # Against the latest checkpoint, made now if the ledger has grown past it: the
        # report holds every access so far.
        try:
            report = build_access_report(
                services, Caller(principal=operator(), purpose="HOPERAT"), patient_id
            )
        except FhirError as error:
            raise fail(f"no patient {patient_id}" if error.status == 404 else str(error)) from None
        except AuditUnavailable as error:
            # Nothing is shown unless its reading is in the ledger: try again later.
            raise fail(f"the audit ledger cannot be written, so no report: {error}", 3) from None
    echo(json.dumps(report, indent=2))


@witness_app.command("serve")
def witness_serve(
    directory: Annotated[Path, typer.Option("--dir", help="The witness's own state directory.")],
    log_key: Annotated[
        list[str], typer.Option("--log-key", help="Verifier key of a log to witness; repeatable.")
    ],
    name: Annotated[str, typer.Option(help="The witness's name (its key name).")] = "witness",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 7380,
) -> None:
    """Serve a witness over HTTP: POST /add-checkpoint as C2SP tlog-witness specifies."""
    from carevault.ledger.verifier import VerifierKey
    from carevault.ledger.witness import WitnessCore, serve_witness

    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    core = WitnessCore(directory, name, [VerifierKey.parse(key) for key in log_key])
    server = serve_witness(core, host, port)
    echo(f"witness {name} on http://{host}:{port}  vkey: {core.verifier_key().render()}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@glass_app.command("queue")
def glass_queue(home: HomeOption = None) -> None:
    """Break-the-glass grants waiting for the privacy officer's review."""
    with open_services(home) as services:
        waiting = services.break_glass.queue()
        words = services.glass_review.words_shown(waiting, principal=operator(), role=None)
        for grant in waiting:
            account = services.accounts.get(grant.account_id)
            who = account.username if account else grant.account_id
            echo(
                f"{grant.grant_id}\t{cell(who)}\t{cell(grant.reason)}\tpatient "
                f"{cell(grant.patient_pseudonym)}\t{cell(words[grant.grant_id])}"
            )


@glass_app.command("review")
def glass_review(
    grant_id: str,
    outcome: Annotated[str, typer.Option(help="justified or unjustified.")],
    reviewer: Annotated[str, typer.Option(help="The reviewing privacy officer's username.")],
    home: HomeOption = None,
) -> None:
    """Record the privacy officer's review of a grant."""
    with open_services(home) as services:
        services.glass_review.review(reviewer, grant_id, outcome, source_address="cli")
    echo(f"grant {grant_id} reviewed: {outcome}")
