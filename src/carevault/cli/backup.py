"""Backups: ``carevault backup DEST`` and ``carevault restore SRC --home DIR``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from carevault.cli.common import HomeOption, app, fail, operator, settings_for

KeysOption = Annotated[
    Path | None,
    typer.Option(
        "--keys",
        help="Directory of the key files (default: <backup>/keys). Keep it apart from the data.",
    ),
]


@app.command()
def backup(
    destination: Annotated[Path, typer.Argument(help="A new, empty directory for the backup.")],
    home: HomeOption = None,
    keys: KeysOption = None,
) -> None:
    """Back up a data directory while it serves: consistent copies, keys, checkpoints."""
    from carevault.backup.service import BackupFailed, take_backup
    from carevault.backup.snapshot import SnapshotFailed

    settings = settings_for(home)
    try:
        manifest = take_backup(settings, destination, keys, operator())
    except (BackupFailed, SnapshotFailed) as error:
        raise fail(f"backup failed: {error}") from None
    for name, head in sorted(manifest.ledgers.items()):
        witnessed = ", ".join(head.witnessed_by) or "NO WITNESS"
        typer.echo(f"{name}: {head.size:,} entries, checkpoint cosigned by {witnessed}")
    typer.echo(f"backup written: {destination.resolve()} ({', '.join(sorted(manifest.files))})")
    keys_directory = (keys or destination / "keys").resolve()
    typer.echo(f"key files: {keys_directory} ({', '.join(sorted(manifest.key_files))})")
    if keys is None:
        typer.secho(
            "move the key files to separate storage, and keep only the latest copy of them: "
            "an old keyring kept beside old data would undo a destroyed KEK version",
            fg=typer.colors.YELLOW,
            err=True,
        )


@app.command()
def restore(
    source: Annotated[Path, typer.Argument(help="A backup directory (`carevault backup`).")],
    home: Annotated[Path, typer.Option("--home", help="A new, empty data directory.")],
    keys: KeysOption = None,
) -> None:
    """Restore a backup into a new data directory, then verify its ledgers.

    Point CAREVAULT_WITNESS_URL or CAREVAULT_WITNESS_DIR at the witness the backed-up
    server used: it tells whether this backup is older than what it has already seen.
    Exits 1 if a ledger does not verify (an older backup shows as a rollback).
    """
    from carevault.backup.manifest import BackupInvalid
    from carevault.backup.service import BackupFailed, restore_backup
    from carevault.backup.snapshot import SnapshotFailed

    settings = settings_for(home)
    try:
        restored = restore_backup(source, settings, keys, operator())
    except (BackupInvalid, BackupFailed, SnapshotFailed) as error:
        raise fail(f"restore refused: {error}") from None
    typer.echo(f"restored {restored.manifest.created} backup into {settings.home.resolve()}")
    for report in restored.reports:
        if report.ok:
            typer.echo(
                f"{report.ledger}: OK - {report.entries:,} entries, "
                f"{report.checkpoints} checkpoints, {report.witnesses} witnesses agree"
            )
        else:
            typer.secho(f"{report.ledger}: MISMATCH", fg=typer.colors.RED, err=True)
            for problem in report.problems:
                typer.secho(f"  - {problem}", fg=typer.colors.RED, err=True)
    if not restored.ok:
        raise fail(
            "the restored ledgers do not verify: if the witness has seen more, this backup is "
            "older than the ledger it was taken from (record why before serving it)"
        )
