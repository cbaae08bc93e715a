"""A read by id's facts on PostgreSQL, read on the event loop in one round trip.

The record (``Vault.locate``) and where its patient is registered (what the policy's
``clinics_of`` looks up) in one statement, awaited on the loop (``loop_reads``); the
gate then decides and answers on the loop as it does on SQLite (``Gate.read_later``
with ``prefetched``). Every other fact the decision might need (a care relationship, a
break-the-glass grant, anything an active containment mode looks up) is read only from
the caches: a read that needs more raises ``WouldBlock`` having recorded and spent
nothing, and is done in a worker thread as before.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection

from carevault.access.registrations import Registrations, registered_columns
from carevault.loop_reads import LoopBusy, LoopReads
from carevault.vault.records import Sealed
from carevault.vault.store import LOCATE, sealed_of
from carevault.vault.tables import resource_head

_LOCATE_REGISTERED = LOCATE.add_columns(*registered_columns(resource_head.c.patient_pseudonym))


@dataclass(frozen=True)
class Prefetched:
    """What was read of a record by id on the loop: its current version, or None if
    there is none."""

    located: Sealed | None


class _NoReads:
    """Stands for the read connection of a decision made on the event loop: a fact that
    is not cached would need a round trip, which must not block the loop."""

    def __getattr__(self, name: str) -> Any:
        raise LoopBusy("a fact the decision needs is not cached")


#: Passed where the policy takes a read connection, on the loop (see ``_NoReads``).
NO_READS = cast(Connection, _NoReads())


async def prefetch_read(
    reads: LoopReads, registrations: Registrations, resource_type: str, resource_id: str
) -> Prefetched:
    """The record ``resource_type/resource_id`` and its patient's registrations, read on
    the loop; the registrations are kept in ``registrations``' cache, where the decision
    made next (in the same turn of the loop) finds them. ``LoopBusy``: read nothing."""
    asked = time.monotonic()
    row = await reads.first(
        _LOCATE_REGISTERED,
        {"located_type": resource_type, "located_id": resource_id, "home_type": "Patient"},
    )
    if row is None:
        return Prefetched(None)
    located = sealed_of(row)
    pseudonym = located.head.patient_pseudonym
    if pseudonym is not None:
        registrations.remember(pseudonym, row[11], row[12], asked)
    return Prefetched(located)
