"""``carevault reindex``: rebuild the search index from the stored records."""

from __future__ import annotations

from typing import Annotated

import typer

from carevault.cli.common import HomeOption, app, open_services, operator
from carevault.vault.reindex import ReindexIncomplete


@app.command("reindex")
def reindex(
    home: HomeOption = None,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Records per transaction.")] = 500,
) -> None:
    """Recompute every record's search tokens and clear dates (after an upgrade that
    indexes more, e.g. records_0011). Safe to run while serving, and to run again."""
    with open_services(home) as services:
        try:
            done = services.gate.reindex(operator(), batch=batch)
        except ReindexIncomplete as error:
            typer.secho(str(error), fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None
    typer.echo(f"reindexed {done} records")
