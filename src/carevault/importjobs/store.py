"""``$import`` jobs as stored: every change of status a conditional UPDATE, a lease per
job, one job queued or running per client (``carevault.jobs``, as exports)."""

from __future__ import annotations

from sqlalchemy import Engine

from carevault.db import write_transaction
from carevault.importjobs.model import WORKING, ImportJob, Status, job_from_row
from carevault.importjobs.tables import import_job
from carevault.jobs import LeasedJobs


class ImportJobStore(LeasedJobs[ImportJob]):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, import_job, job_from_row, WORKING)

    def renew(self, job_id: str, owner: str, until_us: int) -> bool:
        """Keep the lease of a running job; False if it is no longer ours to run."""
        with write_transaction(self.engine) as connection:
            return self.change(connection, job_id, [Status.RUNNING], owner, lease_until_us=until_us)
