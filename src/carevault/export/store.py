"""Export jobs as stored (the lease, the conditional changes and one job in progress
per client: ``carevault.jobs``).

Every change of status is a conditional UPDATE (``WHERE status IN ...``), so two
processes (two officers approving at once, a cancel racing the worker) cannot both
win; the loser sees a row count of zero.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Collection
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select

from carevault.db import read_transaction
from carevault.export.model import IN_PROGRESS, Job, OutputFile, Status, job_from_row
from carevault.export.tables import export_file, export_job
from carevault.jobs import LeasedJobs
from carevault.vault.tables import resource_head


class JobStore(LeasedJobs[Job]):
    def __init__(self, engine: Engine) -> None:
        super().__init__(
            engine, export_job, job_from_row, (Status.APPROVED, Status.RUNNING), IN_PROGRESS
        )

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

    def patient_clinics(self) -> frozenset[str]:
        """Every clinic where a live patient is at home (in the clear: the clinic id): a
        clinic whose patients were all deleted holds none to export."""
        with read_transaction(self.engine) as connection:
            found = connection.execute(
                select(resource_head.c.clinic_id)
                .where(
                    resource_head.c.resource_type == "Patient",
                    resource_head.c.deleted.is_(False),
                    resource_head.c.clinic_id.is_not(None),
                )
                .distinct()
            ).scalars()
            return frozenset(str(item) for item in found)
