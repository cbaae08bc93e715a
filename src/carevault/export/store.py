"""Export jobs as stored (the lease and the conditional changes: ``carevault.jobs``).

Every change of status is a conditional UPDATE (``WHERE status IN ...``), so two
processes (two officers approving at once, a cancel racing the worker) cannot both
win; the loser sees a row count of zero.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Collection
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, text

from carevault.db import read_transaction, write_transaction
from carevault.export.model import IN_PROGRESS, Job, OutputFile, Status, job_from_row
from carevault.export.tables import export_file, export_job
from carevault.jobs import LeasedJobs


class JobStore(LeasedJobs[Job]):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, export_job, job_from_row, (Status.APPROVED, Status.RUNNING))

    def create_unless_busy(self, values: dict[str, Any]) -> str | None:
        """Store the job unless its client already has one in progress; that job's id if
        so (nothing stored), else None. Two kick-offs at once cannot both pass: SQLite's
        write lock, or a PostgreSQL lock on the client taken before looking, orders them."""
        with write_transaction(self.engine) as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                    {"key": f"carevault-export:{values['client_id']}"},
                )
            busy = self.in_progress(values["client_id"], connection)
            if busy is not None:
                return busy
            connection.execute(insert(export_job).values(**values))
        return None

    def in_progress(self, client_id: str, connection: Connection | None = None) -> str | None:
        """The id of the client's job awaiting approval, queued or running, if any."""
        query = (
            select(export_job.c.job_id)
            .where(
                export_job.c.client_id == client_id,
                export_job.c.status.in_([str(s) for s in IN_PROGRESS]),
            )
            .limit(1)
        )
        if connection is not None:
            found = connection.execute(query).scalar_one_or_none()
        else:
            with read_transaction(self.engine) as reading:
                found = reading.execute(query).scalar_one_or_none()
        return None if found is None else str(found)

    def change(
        self,
        connection: Connection,
        job_id: str,
        when: Collection[str],
        owner: str | None = None,
        **values: Any,
    ) -> bool:
        """As ``LeasedJobs.change``; ``approvals`` may be given as a list."""
        if "approvals" in values and not isinstance(values["approvals"], str):
            values["approvals"] = json.dumps(values["approvals"])
        return super().change(connection, job_id, when, owner, **values)

    def add_files(
        self, connection: Connection, job_id: str, files: builtins.list[OutputFile]
    ) -> None:
        if files:
            connection.execute(
                insert(export_file),
                [
                    {
                        "job_id": job_id,
                        "batch": item.batch,
                        "resource_type": item.resource_type,
                        "name": item.name,
                        "count": item.count,
                        "size": item.size,
                    }
                    for item in files
                ],
            )

    def files(self, job_id: str) -> builtins.list[OutputFile]:
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(export_file)
                .where(export_file.c.job_id == job_id)
                .order_by(export_file.c.resource_type, export_file.c.batch)
            ).all()
        return [
            OutputFile(row.batch, row.resource_type, row.name, row._mapping["count"], row.size)
            for row in rows
        ]

    def drop_files(self, connection: Connection, job_id: str) -> None:
        connection.execute(delete(export_file).where(export_file.c.job_id == job_id))

    def counts(self) -> dict[str, int]:
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(export_job.c.status, func.count()).group_by(export_job.c.status)
            ).all()
        return {str(status): int(count) for status, count in rows}
