"""The ``$import`` worker: runs queued jobs in a server process, a batch at a time.

A job is leased to one process at a time (``export_lease_seconds``; a process that
died loses it and another, or the same restarted, takes the job over). The worker
opens the job's sealed body into memory and runs it through the bulk ``Loader`` as the
job's client, a batch of ``import_batch_lines`` lines at a time. Each batch's records,
their audit entries and the journal's step commit in one transaction, so after a kill
the job resumes after its last committed batch: no line is written twice, none is
left out. Before each batch the job is looked at again: cancelled or stopped, it ends;
its principal no longer in good standing, it is stopped; contained, it waits.
"""

from __future__ import annotations

import hashlib
import logging
from itertools import islice

from carevault.bulk.checking import Checker
from carevault.bulk.loader import Loader, Position
from carevault.bulk.sources import ndjson_body_items
from carevault.containment.state import ContainmentActive
from carevault.export.worker import job_caller, worker_name
from carevault.importjobs.model import BODY, ImportJob, Status
from carevault.importjobs.service import ImportService
from carevault.ledger.events import Tag

log = logging.getLogger(__name__)


#: A batch that fails this many times in a row in one process (not a refusal of one of
#: its records, which is reported by line) stops its job rather than being retried at
#: every poll for ever.
MAX_FAILURES = 3


class ImportWorker:
    def __init__(self, service: ImportService, name: str | None = None) -> None:
        self.service = service
        self.name = name or worker_name()
        #: Failures in a row of a job's next batch: (job id, first line) -> count.
        self._failures: dict[tuple[str, int], int] = {}

    def run_once(self, max_batches: int | None = None) -> int:
        """Expire the reports kept long enough, then work on claimable jobs until none
        is left, or one must wait, or ``max_batches`` were done; how many batches were
        committed."""
        svc = self.service
        svc.expire()
        done = 0
        while max_batches is None or done < max_batches:
            if svc.held() is not None:
                return done
            job = svc.jobs.claim(self.name, svc.now_us(), svc.settings.lease_us)
            if job is None:
                return done
            left = None if max_batches is None else max_batches - done
            step, ended = self._run(job, left)
            done += step
            if not ended:
                return done  # held, or out of batches: tried again at the next poll
        return done

    def _run(self, job: ImportJob, max_batches: int | None) -> tuple[int, bool]:
        """Batches done, and whether the job ended (else it waits for later)."""
        svc = self.service
        done = 0
        try:
            reason = svc.standing(job)
            if reason is not None:
                svc.stop(job, reason)
                return done, True
            clinics = svc.clinics(job.job_id)
            if svc.held(clinics) is not None:
                return done, False
            try:
                body = svc.files.read(job.job_id, job.key_id, job.principal, BODY)
            except FileNotFoundError:
                svc.stop(job, "the job's body is gone")
                return done, True
            if hashlib.sha256(job.job_id.encode() + b"\n" + body).hexdigest() != job.digest:
                svc.stop(job, "the job's body does not match what was sent")
                return done, True
            progress = svc.journal.start(
                job.digest, f"$import {job.job_id}", job.lines_total, svc.now_us()
            )
            if job.status is Status.QUEUED and not self._start(job):
                return done, True
            loader = Loader(
                svc.gate,
                svc.now_us,
                caller=job_caller(job, svc.jobs.stored_caller(job.job_id)),
                checker=Checker(svc.limits, 0),
                batch_size=svc.settings.batch_lines,
            )
            # What an earlier worker's run of the job refused to change (someone else's
            # record under an id the body uses): refused again where later lines name it.
            loader.remember(svc.journal.refused_records(job.digest))
            items = ndjson_body_items(body, job.digest, progress.items_done)
            position = Position(job.digest, svc.journal)
            start, pending = progress.items_done, progress.pending_lines
            while batch := list(islice(items, svc.settings.batch_lines)):
                if max_batches is not None and done >= max_batches:
                    return done, False
                current = svc.jobs.get(job.job_id)
                if current is None or current.status is not Status.RUNNING:
                    return done, True  # cancelled or stopped meanwhile
                reason = svc.standing(current)
                if reason is not None:
                    svc.stop(current, reason)
                    return done, True
                if svc.held(clinics) is not None:
                    return done, False
                until = svc.now_us() + svc.settings.lease_us
                if not svc.jobs.renew(job.job_id, self.name, until):
                    return done, True  # no longer ours
                try:
                    loader.load(batch, start=start, position=position, pending=pending)
                except ContainmentActive:
                    raise
                except Exception as error:
                    if self._failed(current, start, error):
                        return done, True
                    raise
                self._failures.pop((job.job_id, start), None)
                start += len(batch)
                pending = frozenset()
                done += 1
            svc.journal.finish(job.digest, svc.now_us())
            current = svc.jobs.get(job.job_id)
            if current is not None:
                svc.complete(current, self.name)
            return done, True
        except ContainmentActive:
            return done, False
        finally:
            svc.jobs.release(job.job_id, self.name)

    def _failed(self, job: ImportJob, start: int, error: Exception) -> bool:
        """Count the failure of the batch after line ``start``; stop the job (naming the
        error's kind, never its text: it may quote a record) once it failed too often.
        True if the job was stopped."""
        key = (job.job_id, start)
        count = self._failures[key] = self._failures.get(key, 0) + 1
        if count < MAX_FAILURES:
            return False
        del self._failures[key]
        self.service.stop(
            job,
            f"the batch from line {start + 1} failed {count} times ({type(error).__name__})",
        )
        return True

    def _start(self, job: ImportJob) -> bool:
        svc = self.service
        now = svc.now_us()
        event = svc.event(
            Tag.IMPORT_STARTED, job, principal=job.principal, reason=f"{job.lines_total} lines"
        )
        return svc.move(
            job,
            [Status.QUEUED],
            event,
            owner=self.name,
            status=str(Status.RUNNING),
            started_us=now,
            updated_us=now,
        )
