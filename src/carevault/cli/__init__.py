"""The ``carevault`` command line: one module per command group, all on one Typer app.

A new group is a module here that adds its commands to ``app`` and is imported below.
"""

from __future__ import annotations

import os

from carevault.cli import (  # noqa: F401 - they register
    alerts,
    audit,
    backup,
    bulk,
    contain,
    detector,
    export,
    import_jobs,
    incident,
    index,
    keys,
    notify,
    patients,
    server,
    sim,
    staff,
)
from carevault.cli.common import app


def main() -> None:
    # Whatever a command creates (databases, keys, exports, temporary files) is its
    # owner's alone, whether or not the code that creates it asks for a mode.
    os.umask(0o077)
    app()


__all__ = ["app", "main"]
