"""Several server processes: ``carevault serve --workers N``.

uvicorn starts N processes that share the listening socket; each builds its own
services from the environment (``CAREVAULT_*``, the data directory set by the parent)
and is one more writer of the same databases. Nothing that must be one sequence is
kept in a process: the audit ledger's head row is the append lock (``BEGIN IMMEDIATE``
on SQLite, ``SELECT ... FOR UPDATE`` on PostgreSQL), so each process's group commits
queue on it and the ledger stays one sequence without gaps or duplicates whatever
the interleaving; containment and detection state live in the database as before.

A worker whose parent dies (killed, not stopped) exits too, rather than keep serving
on a socket nobody supervises.
"""

from __future__ import annotations

import os
import threading
import time

from fastapi import FastAPI

from carevault.config import load_settings
from carevault.web.app import create_app

#: How often a worker looks for its parent.
_PARENT_CHECK_SECONDS = 1.0


def _exit_with_parent(parent: int) -> None:
    while True:
        time.sleep(_PARENT_CHECK_SECONDS)
        if os.getppid() != parent:
            # The ledger needs no flush: what was acknowledged is committed already.
            os._exit(1)


def app_from_environment() -> FastAPI:
    """The app of one worker process (uvicorn calls this factory in each)."""
    threading.Thread(
        target=_exit_with_parent, args=(os.getppid(),), name="parent-watch", daemon=True
    ).start()
    return create_app(load_settings())
