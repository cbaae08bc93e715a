"""Containment switches, the status overview, and erasure."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from carevault.cli.common import (
    HomeOption,
    OfficerOption,
    TotpOption,
    app,
    as_officer,
    open_services,
    when,
)
from carevault.cli.terminal import cell, echo
from carevault.containment.state import Mode

if TYPE_CHECKING:
    from carevault.bootstrap import Services
    from carevault.keys.service import KeyService

contain_app = typer.Typer(help="Containment: graded switches for an incident (privacy officer).")
app.add_typer(contain_app, name="contain")


@contain_app.command("start")
def contain_start(
    mode: Annotated[Mode, typer.Argument(help="The containment mode.")],
    reason: Annotated[str, typer.Option(help="Why (recorded in the ledger).")],
    officer: OfficerOption,
    target: Annotated[
        str | None,
        typer.Option(help="Clinic id, address range, username or client id, as the mode needs."),
    ] = None,
    totp: TotpOption = None,
    home: HomeOption = None,
) -> None:
    """Start a containment mode; it takes effect in every server process within a second."""
    with open_services(home) as services:
        started = services.contain.start(as_officer(officer, totp), mode, target, reason)
    suffix = f" on {started.target}" if started.target else ""
    echo(f"containment #{started.containment_id}: {started.mode}{suffix} is ON")


@contain_app.command("release")
def contain_release(
    containment_id: int,
    reason: Annotated[str, typer.Option(help="Why (recorded in the ledger).")],
    officer: OfficerOption,
    totp: TotpOption = None,
    home: HomeOption = None,
) -> None:
    """Release a containment mode."""
    with open_services(home) as services:
        released = services.contain.release(as_officer(officer, totp), containment_id, reason)
    echo(f"containment #{released.containment_id}: {released.mode} released")


@contain_app.command("approve")
def contain_approve(
    grant_id: str, officer: OfficerOption, totp: TotpOption = None, home: HomeOption = None
) -> None:
    """Approve a clinician's emergency access request while patient data is offline."""
    with open_services(home) as services:
        grant = services.contain.approve_emergency(as_officer(officer, totp), grant_id)
    echo(f"emergency access {grant.grant_id} approved")


@app.command()
def status(home: HomeOption = None) -> None:
    """Active containment, break-the-glass review queue, emergency requests, ledgers."""
    with open_services(home) as services:
        state = services.containment.refresh()
        echo("Containment:")
        if not state.active:
            echo("  none active")
        for item in state.active:
            suffix = f" {item.target}" if item.target else ""
            echo(
                f"  #{item.containment_id} {item.mode}{cell(suffix)} since {when(item.started_us)}"
                f" by {cell(item.started_by)}: {cell(item.reason)}"
            )
        pending = services.break_glass.pending()
        echo(f"Emergency access requests awaiting approval: {len(pending)}")
        for grant in pending:
            echo(f"  {grant.grant_id} {cell(grant.reason)} (account {grant.account_id})")
        queue = services.break_glass.queue()
        echo(f"Break-the-glass grants awaiting review: {len(queue)}")
        for grant in queue:
            echo(f"  {grant.grant_id} {cell(grant.reason)} at {when(grant.granted_us)}")
        _detection_status(services)
        from carevault.cli.export import print_exports

        print_exports(services)
        for ledger in services.ledgers():
            size, _ = ledger.store.head()
            latest = ledger.checkpoints.latest()
            signed = f"last checkpoint at size {latest.size}" if latest else "no checkpoint yet"
            echo(f"Ledger {ledger.store.name}: {size:,} entries, {signed}")
        from carevault.cli.notify import print_clocks

        print_clocks(services)


def _detection_status(services: Services) -> None:
    """Open alerts, automatic actions in force, and how far the detectors have read."""
    detection = services.detection
    if detection is None:
        return
    alerts = detection.alerts.list(status="open")
    acted = [a for a in alerts if a.action not in (None, "raise")]
    echo(f"Detection: {len(alerts)} open alerts, {len(acted)} with an automatic action")
    for alert in acted[-10:]:
        who = cell(alert.account or alert.client or alert.case_key)
        echo(
            f"  alert {alert.alert_id} {alert.severity} {alert.detector} {who}: "
            f"{cell(alert.action)}"
            + (f" (containment #{alert.containment_id})" if alert.containment_id else "")
        )
    throttled = sorted(detection.flags.current().throttled)
    if throttled:
        echo(f"  throttled: {cell(', '.join(throttled))} (carevault alerts unthrottle)")
    progress = detection.engine.progress()
    # Whether any process judges what is committed now: a server whose settings turned
    # the thread off (CAREVAULT_DETECT_THREAD) with no detection process judges nothing.
    judging = (
        "a process is judging them"
        if progress.judging
        else "no process is judging them now (`carevault serve` runs one beside its "
        "servers; `carevault detect` on its own)"
    )
    echo(
        f"  detectors have read {progress.judged:,} of {progress.entries:,} audit entries; "
        f"{judging}"
    )
    now_us = services.now_us()
    if progress.behind(now_us) and progress.waiting_since_us is not None:
        waited = (now_us - progress.waiting_since_us) // 1_000_000
        echo(f"  the oldest entry not yet judged was written {waited:,} s ago")


def _shreddable(services: Services, patient: str) -> tuple[KeyService, str, str]:
    """The key service, the id and the pseudonym of the patient ``patient`` names (an id
    or ``Patient/<id>``), whose record may be deleted: a deletion keeps every version
    sealed under the patient's key, so an erasure request still stands, and an erasure's
    words are still to be shown after a deletion (adversary round 68: both said "no
    patient"). Exit 1 if encryption is off (no key to shred) or there is no such patient."""
    if services.keys is None:
        typer.secho("encryption is off: no patient's key to shred", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    patient_id = patient.removeprefix("Patient/")
    found = services.vault.patient_of("Patient", patient_id)
    if found is None:
        typer.secho(f"no patient {patient_id}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    return services.keys, found[0], found[1]


@app.command()
def erase(
    patient: Annotated[str, typer.Option(help="The patient's id.")],
    reason: Annotated[str, typer.Option(help="The erasure request (recorded).")],
    officer: OfficerOption,
    totp: TotpOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    home: HomeOption = None,
) -> None:
    """Erase one patient by crypto-shredding their data key (cannot be undone).

    Backups keep the wrapped key while the old key-encryption key lives: afterwards
    run `carevault keys rotate` and `carevault keys destroy-version` for the old one.
    """
    with open_services(home) as services:
        keys, patient_id, pseudonym = _shreddable(services, patient)
        if not yes:
            typer.confirm(f"Erase Patient/{patient_id} for good?", abort=True)
        services.contain.erase_patient(as_officer(officer, totp), pseudonym, reason, keys)
    echo(f"Patient/{patient_id} erased: its data key is destroyed")
    echo("Next: carevault keys rotate, then carevault keys destroy-version <old version>")


@app.command("erasure-reason")
def erasure_reason(
    patient: Annotated[str, typer.Option(help="The erased patient's id.")],
    officer: OfficerOption,
    totp: TotpOption = None,
    home: HomeOption = None,
) -> None:
    """The words the officer gave for erasing a patient: sealed apart from the ledger
    (they may name the patient), shown to a privacy officer and recorded."""
    from carevault.clock import fhir_instant, from_micros

    with open_services(home) as services:
        keys, patient_id, pseudonym = _shreddable(services, patient)
        found = services.contain.erasures(as_officer(officer, totp), pseudonym, keys)
    if not found:
        echo(f"Patient/{patient_id} was not erased")
        return
    for erasure in found:
        when = fhir_instant(from_micros(erasure.at_us))
        echo(f"{when}  {erasure.principal}  (ledger position {erasure.position})")
        echo(f"  {erasure.reason}")
