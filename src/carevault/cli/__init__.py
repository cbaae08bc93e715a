"""The ``carevault`` command line: one module per command group, all on one Typer app.

A new group is a module here that adds its commands to ``app`` and is imported below.
"""

from __future__ import annotations

from carevault.cli import audit, contain, keys, server, sim, staff  # noqa: F401 - they register
from carevault.cli.common import app


def main() -> None:
    app()


__all__ = ["app", "main"]
