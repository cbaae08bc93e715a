"""How busy the gate has been: accesses to patient records per hour and per actor.

For a picture of activity, not for evidence: it counts the indexed copies of the
entries' actor and subject (an entry about a patient has the patient's pseudonym as
its subject) in one grouped query, without reading the entries themselves. Evidence
(access reports, scope) reads and proves the entry bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from carevault.db import read_transaction
from carevault.ledger.store import LedgerStore

HOUR_US = 3_600_000_000


@dataclass(frozen=True)
class HourlyCount:
    #: Start of the hour, in microseconds since the epoch.
    hour_us: int
    actor: str
    count: int


def hourly_accesses(store: LedgerStore, since_us: int, until_us: int) -> list[HourlyCount]:
    """Entries about a patient from ``since_us`` (rounded down to the hour) to ``until_us``,
    counted per hour and actor."""
    start = since_us - since_us % HOUR_US
    table = store.tables.entry
    bucket = ((table.c.at_us - start) // HOUR_US).label("bucket")
    statement = (
        select(bucket, table.c.actor, func.count().label("n"))
        .where(
            table.c.ledger == store.name,
            table.c.at_us >= start,
            table.c.at_us < until_us,
            table.c.subject.is_not(None),
        )
        .group_by(bucket, table.c.actor)
    )
    with read_transaction(store.engine) as connection:
        rows = connection.execute(statement).all()
    return [
        HourlyCount(start + int(row.bucket) * HOUR_US, row.actor or "", int(row.n)) for row in rows
    ]
