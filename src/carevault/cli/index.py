"""``carevault reindex``: rebuild the search index from the stored records."""

from __future__ import annotations

from typing import Annotated

import typer

from carevault.cli.common import HomeOption, app, open_services, operator


@app.command("reindex")
def reindex(
    home: HomeOption = None,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Records per transaction.")] = 500,
) -> None:
    """Recompute every record's search tokens and clear dates (after an upgrade that
    indexes more, e.g. records_0011). Safe to run while serving, and to run again."""
    with open_services(home) as services:
        done = services.gate.reindex(operator(), batch=batch)
    typer.echo(f"reindexed {done} records")
