"""How busy the gate has been: accesses to patient records per hour and per actor.

For a picture of activity, not for evidence: it counts the indexed copies of the
entries' actor and subject (an entry about a patient has the patient's pseudonym as
its subject), never the entry bytes; evidence (access reports, scope) reads and
proves the entries themselves.

The counts are kept as a rollup (``ledger_activity``) with a mark of the last entry
counted (``ledger_activity_mark``): each reader first counts what was appended since,
in one grouped query over that range of entries, so a busy day's hundreds of
thousands of entries are counted once, not on every look. The mark moves only if no
other process moved it meanwhile, so nothing is counted twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from carevault.db import read_transaction, write_transaction
from carevault.ledger.store import LedgerStore
from carevault.ledger.tables import activity_mark, activity_rollup

log = logging.getLogger("carevault.ledger")

HOUR_US = 3_600_000_000
#: How far back counting starts the first time, and how long counts are kept.
KEEP_US = 8 * 24 * HOUR_US


@dataclass(frozen=True)
class HourlyCount:
    #: Start of the hour, in microseconds since the epoch.
    hour_us: int
    actor: str
    count: int


class _Moved(Exception):
    """Another process counted the same entries first: this count is dropped."""


def _upsert(connection: Connection, ledger: str, hour_us: int, actor: str, count: int) -> None:
    module = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = module.insert(activity_rollup).values(
        ledger=ledger, hour_us=hour_us, actor=actor, count=count
    )
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=["ledger", "hour_us", "actor"],
            set_={"count": activity_rollup.c.count + statement.excluded.count},
        )
    )


def catch_up(store: LedgerStore, engine: Engine, now_us: int) -> int:
    """Count the entries appended since the mark; how many entries that covered."""
    size = store.head()[0]
    table = store.tables.entry
    with read_transaction(engine) as connection:
        mark = connection.execute(
            select(activity_mark.c.seq).where(activity_mark.c.ledger == store.name)
        ).scalar()
    if mark is None:
        with read_transaction(store.engine) as connection:
            first = connection.execute(
                select(func.min(table.c.seq)).where(
                    table.c.ledger == store.name, table.c.at_us >= now_us - KEEP_US
                )
            ).scalar()
        mark = (size if first is None else int(first)) - 1
    if mark >= size - 1:
        return 0
    bucket = (table.c.at_us - table.c.at_us % HOUR_US).label("hour_us")
    with read_transaction(store.engine) as connection:
        rows = connection.execute(
            select(bucket, table.c.actor, func.count().label("n"))
            .where(
                table.c.ledger == store.name,
                table.c.seq > mark,
                table.c.seq < size,
                table.c.subject.is_not(None),
            )
            .group_by(bucket, table.c.actor)
        ).all()
    try:
        with write_transaction(engine) as connection:
            if (
                connection.execute(
                    select(activity_mark.c.seq).where(activity_mark.c.ledger == store.name)
                ).first()
                is None
            ):
                connection.execute(insert(activity_mark).values(ledger=store.name, seq=mark))
            moved = connection.execute(
                update(activity_mark)
                .where(activity_mark.c.ledger == store.name, activity_mark.c.seq == mark)
                .values(seq=size - 1)
            ).rowcount
            if moved != 1:
                raise _Moved()
            for row in rows:
                _upsert(connection, store.name, int(row.hour_us), row.actor or "", int(row.n))
            connection.execute(
                delete(activity_rollup).where(
                    activity_rollup.c.ledger == store.name,
                    activity_rollup.c.hour_us < now_us - KEEP_US,
                )
            )
    except (_Moved, IntegrityError):
        # Another process counted these entries (or made the mark) first.
        return 0
    return size - 1 - mark


def hourly_accesses(
    store: LedgerStore, engine: Engine, since_us: int, until_us: int
) -> list[HourlyCount]:
    """Entries about a patient from ``since_us`` (rounded down to the hour) to ``until_us``,
    counted per hour and actor; ``engine`` is the records database, where counts are kept."""
    catch_up(store, engine, until_us)
    start = since_us - since_us % HOUR_US
    with read_transaction(engine) as connection:
        rows = connection.execute(
            select(
                activity_rollup.c.hour_us,
                activity_rollup.c.actor,
                activity_rollup.c["count"].label("n"),
            )
            .where(
                activity_rollup.c.ledger == store.name,
                activity_rollup.c.hour_us >= start,
                activity_rollup.c.hour_us < until_us,
            )
            .order_by(activity_rollup.c.hour_us)
        ).all()
    return [HourlyCount(int(row.hour_us), row.actor, int(row.n)) for row in rows]


class ActivityCounter:
    """Keeps the counts caught up in the background (every ``seconds``), so that even the
    first look after a bulk load finds little left to count."""

    def __init__(
        self, store: LedgerStore, engine: Engine, now_us: Callable[[], int], seconds: float
    ) -> None:
        self.store = store
        self.engine = engine
        self.now_us = now_us
        self.seconds = seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="activity", daemon=True)

    def start(self) -> None:
        if self.seconds > 0:
            self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                catch_up(self.store, self.engine, self.now_us())
            except Exception:
                log.exception("counting the activity of %s failed", self.store.name)
            if self._stop.wait(self.seconds):
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
