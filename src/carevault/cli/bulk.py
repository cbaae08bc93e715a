"""``carevault import``: FHIR NDJSON files and Bundles loaded in bulk, resumably."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from carevault.cli.common import HomeOption, app, fail, settings_for
from carevault.cli.terminal import bar_label, cell, echo, progress_console

if TYPE_CHECKING:
    from carevault.bulk.importer import ImportReport

#: Refused lines printed per file; every one is in the JSON report.
SHOWN_REJECTIONS = 20


@app.command("import")
def import_files(
    paths: Annotated[
        list[Path],
        typer.Argument(
            exists=True,
            dir_okay=True,
            help="NDJSON files (one resource a line), Bundles, or folders of them.",
        ),
    ],
    home: HomeOption = None,
    batch_size: Annotated[
        int, typer.Option(min=1, max=20_000, help="Records per transaction.")
    ] = 2000,
    report: Annotated[
        Path | None, typer.Option(help="Write the full report (every refused line) as JSON.")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=0,
            help="Processes that validate records and work out their search terms beside "
            "the writer (default 0: in the writer; each process costs seconds to start, "
            "so 1 pays on large imports).",
        ),
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Load FHIR records in bulk through the gate: validated, encrypted, indexed, care
    relationships derived, one audit entry per patient per batch. Run it again after an
    interruption: it carries on where it stopped and skips files already loaded."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from carevault.bootstrap import build_services, initialise, input_limits
    from carevault.bulk.checking import Checker
    from carevault.bulk.importer import Importer
    from carevault.bulk.journal import Journal
    from carevault.bulk.loader import Loader
    from carevault.containment.state import ContainmentActive
    from carevault.ledger.trail import AuditUnavailable

    files = _expand(paths)
    if not files:
        raise fail("no .ndjson, .jsonl or .json files found", 2)
    settings = settings_for(home)
    # Checking processes first: they start (seconds) while the database and keys are
    # opened, and the writer checks fewer of the first batches itself meanwhile.
    checker = Checker(input_limits(settings), workers)
    try:
        initialise(settings)
        services = build_services(settings)
    except BaseException:
        checker.close()
        raise
    # A process of its own: the collector is held paused for the whole load.
    loader = Loader(
        services.gate,
        services.now_us,
        checker=checker,
        batch_size=batch_size,
        hold_collector=True,
    )
    importer = Importer(loader, Journal(services.engine, services.keys))
    try:
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=progress_console(),
            disable=quiet,
        ) as bar:
            task = bar.add_task("import", total=0)

            def start(name: str, count: int) -> None:
                bar.update(task, description=bar_label(name[:40]), total=count, completed=0)

            def advance(count: int) -> None:
                bar.advance(task, count)

            outcome = importer.run(files, start=start, advance=advance)
    except (ContainmentActive, AuditUnavailable) as error:
        raise fail(f"import stopped, nothing of the current batch kept: {error}") from None
    finally:
        checker.close()
        services.close()
    _print(outcome)
    if report is not None:
        report.write_text(json.dumps(outcome.as_json(), indent=1) + "\n")
        echo(f"full report: {report}")
    if any(item.error for item in outcome.files):
        raise typer.Exit(1)


def _expand(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(
                    p
                    for p in path.iterdir()
                    if p.suffix.lower() in (".ndjson", ".jsonl", ".json") and p.is_file()
                )
            )
        else:
            found.append(path)
    return found


def _print(outcome: ImportReport) -> None:
    for item in outcome.files:
        if item.error:
            typer.secho(f"{cell(item.name)}: {cell(item.error)}", fg=typer.colors.RED, err=True)
            continue
        state = (
            "already loaded"
            if item.already_done
            else (f"resumed at item {item.resumed_from:,}" if item.resumed_from else "loaded")
        )
        echo(f"{item.name}: {state}; {item.accepted:,} accepted, {item.rejected:,} rejected")
        for line, reason in item.rejections[:SHOWN_REJECTIONS]:
            echo(f"  line {line}: {cell(reason)}")
        if item.rejected > SHOWN_REJECTIONS:
            echo(f"  ... {item.rejected - SHOWN_REJECTIONS:,} more (see --report)")
    echo(
        f"{outcome.accepted:,} accepted, {outcome.rejected:,} rejected; this run wrote "
        f"{outcome.written:,} records in {outcome.seconds:.1f} s ({outcome.rate:,.0f}/s)"
    )
