"""``$import`` jobs as stored: every change of status a conditional UPDATE, a lease per
job (the export's pattern, ``export/store.py``)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Connection, Engine, insert, or_, select, update

from carevault.db import read_transaction, write_transaction
from carevault.importjobs.model import WORKING, ImportJob, Status, job_from_row
from carevault.importjobs.tables import import_job


class ImportJobStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def insert(self, connection: Connection, values: dict[str, Any]) -> None:
        connection.execute(insert(import_job).values(**values))

    def get(self, job_id: str, connection: Connection | None = None) -> ImportJob | None:
        query = select(import_job).where(import_job.c.job_id == job_id)
        if connection is not None:
            row = connection.execute(query).first()
        else:
            with read_transaction(self.engine) as reading:
                row = reading.execute(query).first()
        return None if row is None else job_from_row(row._mapping)

    def caller(self, job_id: str) -> str:
        with read_transaction(self.engine) as connection:
            return str(
                connection.execute(
                    select(import_job.c.caller).where(import_job.c.job_id == job_id)
                ).scalar_one()
            )

    def all(self, statuses: Collection[Status] | None = None) -> list[ImportJob]:
        query = select(import_job).order_by(import_job.c.requested_us, import_job.c.job_id)
        if statuses:
            query = query.where(import_job.c.status.in_([str(s) for s in statuses]))
        with read_transaction(self.engine) as connection:
            rows = connection.execute(query).all()
        return [job_from_row(row._mapping) for row in rows]

    def change(
        self,
        connection: Connection,
        job_id: str,
        when: Collection[Status],
        owner: str | None = None,
        **values: Any,
    ) -> bool:
        """Set ``values`` if the job is in one of ``when`` (and leased by ``owner``)."""
        query = update(import_job).where(
            import_job.c.job_id == job_id, import_job.c.status.in_([str(s) for s in when])
        )
        if owner is not None:
            query = query.where(import_job.c.lease_owner == owner)
        return connection.execute(query.values(**values)).rowcount == 1

    def renew(self, job_id: str, owner: str, until_us: int) -> bool:
        """Keep the lease of a running job; False if it is no longer ours to run."""
        with write_transaction(self.engine) as connection:
            return self.change(connection, job_id, [Status.RUNNING], owner, lease_until_us=until_us)

    def claim(self, owner: str, now_us: int, lease_us: int) -> ImportJob | None:
        """Lease one queued or running job no live process holds; None if none."""
        free = or_(
            import_job.c.lease_owner.is_(None),
            import_job.c.lease_owner == owner,
            import_job.c.lease_until_us < now_us,
        )
        with write_transaction(self.engine) as connection:
            candidates = connection.execute(
                select(import_job.c.job_id)
                .where(import_job.c.status.in_([str(s) for s in WORKING]), free)
                .order_by(import_job.c.requested_us)
                .limit(1)
            ).all()
            for (job_id,) in candidates:
                taken = connection.execute(
                    update(import_job)
                    .where(import_job.c.job_id == job_id, free)
                    .values(lease_owner=owner, lease_until_us=now_us + lease_us)
                ).rowcount
                if taken == 1:
                    return self.get(job_id, connection)
        return None

    def release(self, job_id: str, owner: str) -> None:
        with write_transaction(self.engine) as connection:
            connection.execute(
                update(import_job)
                .where(import_job.c.job_id == job_id, import_job.c.lease_owner == owner)
                .values(lease_owner=None, lease_until_us=None)
            )
