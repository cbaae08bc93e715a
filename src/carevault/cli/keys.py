"""The key-encryption key: status, rotation, destruction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from carevault.cli.common import HomeOption, app, open_services, operator
from carevault.cli.terminal import progress_console

if TYPE_CHECKING:
    from carevault.bootstrap import Services
    from carevault.keys.service import KeyService


keys_app = typer.Typer(help="The key-encryption key: status, rotation, destruction.")
app.add_typer(keys_app, name="keys")


def _key_service(services: Services) -> KeyService:
    if services.keys is None:
        typer.secho("encryption is off", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    return services.keys


@keys_app.command("status")
def keys_status(home: HomeOption = None) -> None:
    """The provider, its KEK versions, and how many data keys await re-wrapping."""
    with open_services(home) as services:
        keys = _key_service(services)
        provider = keys.provider
        typer.echo(f"provider: {provider.name}")
        typer.echo(f"versions: {provider.versions()} (active {provider.active_version()})")
        typer.echo(f"data keys to re-wrap: {keys.pending_rewrap()}")


@keys_app.command("rotate")
def keys_rotate(
    home: HomeOption = None,
    resume: Annotated[
        bool, typer.Option(help="Finish an interrupted re-wrap without a new version.")
    ] = False,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Keys per transaction.")] = 200,
) -> None:
    """Make a new KEK version and re-wrap every data key under it, with no downtime.

    Safe to interrupt: run it again with --resume and it carries on where it stopped.
    """
    from rich.progress import Progress

    from carevault.ledger.events import AuditEvent, Outcome, Tag

    with open_services(home) as services:
        keys = _key_service(services)
        if not resume:
            version = keys.provider.create_version()
            typer.echo(f"new key-encryption key version {version} is active")
        total = keys.pending_rewrap()
        # Written before the first unwrap, so that the detectors know whose unwraps follow.
        services.audit.record(
            [
                AuditEvent(
                    tag=Tag.KEY_ROTATION_STARTED,
                    outcome=Outcome.SUCCESS,
                    at_us=services.now_us(),
                    principal=operator(),
                    reason="resumed" if resume else "new version",
                    detail={"pending": total},
                )
            ]
        )
        with Progress(console=progress_console()) as bar:
            task = bar.add_task("re-wrapping data keys", total=total)
            while done := keys.rewrap_batch(batch):
                bar.advance(task, done)
        services.audit.record(
            [
                AuditEvent(
                    tag=Tag.KEY_ROTATED,
                    outcome=Outcome.SUCCESS,
                    at_us=services.now_us(),
                    principal=operator(),
                    reason=f"active version {keys.provider.active_version()}",
                    detail={"rewrapped": total},
                )
            ]
        )
        services.audit_ledger.checkpoints.make("kek rotation")
    typer.echo(f"re-wrapped {total} data keys; none left on older versions")


@keys_app.command("destroy-version")
def keys_destroy_version(
    version: int,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    home: HomeOption = None,
) -> None:
    """Destroy an old KEK version (refused while any data key still needs it)."""
    from carevault.ledger.events import AuditEvent, Outcome, Tag

    with open_services(home) as services:
        keys = _key_service(services)
        if not yes:
            typer.confirm(f"Destroy key-encryption key version {version} for good?", abort=True)
        keys.destroy_kek_version(version)
        services.audit.record(
            [
                AuditEvent(
                    tag=Tag.KEY_VERSION_DESTROYED,
                    outcome=Outcome.SUCCESS,
                    at_us=services.now_us(),
                    principal=operator(),
                    reason=f"version {version} destroyed",
                )
            ]
        )
        services.audit_ledger.checkpoints.make("kek destroyed")
    typer.echo(f"version {version} destroyed")
