"""Jobs that a server process runs in the background under a lease (Bulk Data exports,
``$import`` jobs): stored one row each, every change of status a conditional UPDATE
(``WHERE status IN ...``), so that two processes (two officers at once, a cancel racing
the worker) cannot both win; the loser sees a row count of zero. A job is leased to one
process at a time; a process that died loses its lease when it lapses, and another (or
the same, restarted) takes the job over."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine, RowMapping, Table, or_, select, update

from carevault.db import read_transaction, write_transaction
from carevault.gate import Caller

J = TypeVar("J")


def caller_json(caller: Caller) -> str:
    """A job's client as it is at kick-off, for the job's ``caller`` column: what the job
    runs as later (``export.worker.job_caller`` reads it back)."""
    actor, scopes = caller.actor, caller.scopes
    assert actor is not None and scopes is not None  # noqa: S101 - a client's job
    return json.dumps(
        {
            "role": str(actor.role),
            "clinic_ids": sorted(actor.clinic_ids),
            "practitioner_id": actor.practitioner_id,
            "account_id": actor.account_id,
            "scopes": scopes.text(),
            "source_address": caller.source_address,
            "user_agent": (caller.user_agent or "")[:200] or None,
        }
    )


class LeasedJobs(Generic[J]):
    """A table of jobs (``job_id``, ``status``, ``caller``, ``requested_us``,
    ``lease_owner``, ``lease_until_us`` columns) read as ``J`` by ``from_row``;
    ``working``: the statuses a worker may take a job in."""

    def __init__(
        self,
        engine: Engine,
        table: Table,
        from_row: Callable[[RowMapping], J],
        working: Collection[str],
    ) -> None:
        self.engine = engine
        self.table = table
        self._from_row = from_row
        self._working = sorted(str(status) for status in working)

    def get(self, job_id: str, connection: Connection | None = None) -> J | None:
        query = select(self.table).where(self.table.c.job_id == job_id)
        if connection is not None:
            row = connection.execute(query).first()
        else:
            with read_transaction(self.engine) as reading:
                row = reading.execute(query).first()
        return None if row is None else self._from_row(row._mapping)

    def stored_caller(self, job_id: str) -> str:
        """The job's ``caller`` column: its client as it was at kick-off (JSON)."""
        with read_transaction(self.engine) as connection:
            return str(
                connection.execute(
                    select(self.table.c.caller).where(self.table.c.job_id == job_id)
                ).scalar_one()
            )

    def clinics(self, job_id: str) -> frozenset[str]:
        """The clinics the job's client reached when it kicked the job off (none if the
        job is not known)."""
        with read_transaction(self.engine) as connection:
            stored = connection.execute(
                select(self.table.c.caller).where(self.table.c.job_id == job_id)
            ).scalar_one_or_none()
        return frozenset(json.loads(stored).get("clinic_ids", ())) if stored else frozenset()

    def all(self, statuses: Collection[str] | None = None) -> list[J]:
        table = self.table
        query = select(table).order_by(table.c.requested_us, table.c.job_id)
        if statuses:
            query = query.where(table.c.status.in_([str(s) for s in statuses]))
        with read_transaction(self.engine) as connection:
            rows = connection.execute(query).all()
        return [self._from_row(row._mapping) for row in rows]

    def change(
        self,
        connection: Connection,
        job_id: str,
        when: Collection[str],
        owner: str | None = None,
        **values: Any,
    ) -> bool:
        """Set ``values`` if the job is in one of ``when`` (and leased by ``owner``)."""
        table = self.table
        query = update(table).where(
            table.c.job_id == job_id, table.c.status.in_([str(s) for s in when])
        )
        if owner is not None:
            query = query.where(table.c.lease_owner == owner)
        return connection.execute(query.values(**values)).rowcount == 1

    def claim(self, owner: str, now_us: int, lease_us: int) -> J | None:
        """Lease one job in a working status that no live process holds; None if none."""
        table = self.table
        free = or_(
            table.c.lease_owner.is_(None),
            table.c.lease_owner == owner,
            table.c.lease_until_us < now_us,
        )
        with write_transaction(self.engine) as connection:
            candidates = connection.execute(
                select(table.c.job_id)
                .where(table.c.status.in_(self._working), free)
                .order_by(table.c.requested_us)
                .limit(1)
            ).all()
            for (job_id,) in candidates:
                taken = connection.execute(
                    update(table)
                    .where(table.c.job_id == job_id, free)
                    .values(lease_owner=owner, lease_until_us=now_us + lease_us)
                ).rowcount
                if taken == 1:
                    return self.get(job_id, connection)
        return None

    def release(self, job_id: str, owner: str) -> None:
        table = self.table
        with write_transaction(self.engine) as connection:
            connection.execute(
                update(table)
                .where(table.c.job_id == job_id, table.c.lease_owner == owner)
                .values(lease_owner=None, lease_until_us=None)
            )
