"""The export worker: runs approved jobs in a server process, a batch at a time.

A batch is the next patients (in the order of their Patient rows) after the job's
cursor, read through the gate as the client. Its files are written and made durable
first; then one transaction records the batch's audit entries (one per exported
patient, one per file), its ``export_file`` rows and the job's new cursor. A kill
before that commit leaves files that the batch, run again from the same cursor,
overwrites under the same names; a kill after it leaves nothing to redo. So no patient
is twice in the files or the ledger, and none is missing. An export ``_since`` a time
lists its batch's deletions (``deleted``) in one more file of the batch, written and
committed with the others: so they are neither doubled nor lost by a kill either.

A job is leased to one process at a time; a process that died loses its lease after
``export_lease_seconds`` and another (or the same, restarted) takes the job over.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from typing import Protocol

from sqlalchemy import ColumnElement, func, select

from carevault.access.scopes import parse as parse_scopes
from carevault.containment.state import ContainmentActive
from carevault.db import WritesInFlight, read_transaction, settled_now, write_transaction
from carevault.domain.policy import Actor
from carevault.domain.roles import Role
from carevault.export.files import deleted_file_name, file_name, released_file_name
from carevault.export.model import DELETED_TYPE, Job, Level, OutputFile, Status, deleted_ndjson
from carevault.export.reach import covered_patients
from carevault.export.service import ExportService
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller
from carevault.gate.export import ExportedBatch, export_directory, export_patients
from carevault.ledger.events import AuditEvent, Tag
from carevault.logsafe import describe
from carevault.vault.records import Opened
from carevault.vault.tables import resource_head

log = logging.getLogger(__name__)
_PURPOSE = "HOPERAT"
_WORKING = frozenset({Status.APPROVED, Status.RUNNING})


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


class ClientJob(Protocol):
    """A job a client kicked off (an export, an ``$import``): whose it is, and the session
    it was kicked off with."""

    @property
    def principal(self) -> str: ...

    @property
    def client_id(self) -> str: ...

    @property
    def session_id(self) -> str | None: ...


class Runs(Protocol):
    """A worker of jobs: does what there is to do now, and says how much it did."""

    def run_once(self) -> int: ...


def job_caller(job: ClientJob, stored: str) -> Caller:
    """The client as it was at kick-off: what the job reads (or writes) as."""
    saved = json.loads(stored)
    return Caller(
        principal=job.principal,
        purpose=_PURPOSE,
        source_address=saved.get("source_address"),
        user_agent=saved.get("user_agent"),
        actor=Actor(
            principal=job.principal,
            role=Role(saved["role"]),
            clinic_ids=frozenset(saved["clinic_ids"]),
            practitioner_id=saved.get("practitioner_id"),
            account_id=saved.get("account_id"),
        ),
        client_id=job.client_id,
        # The entries of what the job reads or writes name the session it was kicked off
        # with, as the request's own would: an incident naming only that token's session
        # finds the patients exported (or the records imported) under it.
        session_id=job.session_id,
        scopes=parse_scopes(saved["scopes"], allowed_contexts=frozenset({"system"})),
    )


class ExportWorker:
    def __init__(self, service: ExportService, name: str | None = None) -> None:
        self.service = service
        self.name = name or worker_name()

    # --- one job -----------------------------------------------------------------------

    def run_once(self, max_batches: int | None = None) -> int:
        """Expire what is due, then work on claimable jobs until none is left (or
        ``max_batches`` were done); how many batches were committed."""
        self.service.expire()
        self.service.stop_contained()
        done = 0
        while max_batches is None or done < max_batches:
            if self.service.held() is not None:
                return done
            job = self.service.jobs.claim(
                self.name, self.service.now_us(), self.service.settings.lease_us
            )
            if job is None:
                return done
            step = self._run(job, None if max_batches is None else max_batches - done)
            done += step
            after = self.service.jobs.get(job.job_id)
            if step == 0 and after is not None and after.status in _WORKING:
                return done  # nothing moved (held): try again at the next poll
        return done

    def _run(self, job: Job, max_batches: int | None) -> int:
        svc = self.service
        stored = svc.jobs.stored_caller(job.job_id)
        caller = job_caller(job, stored)
        done = 0
        try:
            while max_batches is None or done < max_batches:
                # Before each batch: a principal suspended, revoked or whose session was
                # ended mid-export gets no further patient.
                reason = svc.standing(job)
                if reason is not None:
                    svc.stop(job, reason)
                    return done
                if job.status is Status.APPROVED:
                    job = self._start(job, caller)
                if self._batch(job, caller):
                    return done
                done += 1
                current = svc.jobs.get(job.job_id)
                if current is None or current.status is not Status.RUNNING:
                    return done
                job = current
            return done
        except (ContainmentActive, WritesInFlight, _Stopped):
            # Held (writes in flight past the settling's wait, too): the next poll goes on.
            return done
        finally:
            svc.jobs.release(job.job_id, self.name)

    def _start(self, job: Job, caller: Caller) -> Job:
        svc = self.service
        now = settled_now(svc.jobs.engine, svc.now_us)
        # The manifest's transactionTime: every version stamped at or before it is
        # committed, so this job's batches (read after it) see it, and a follow-up export
        # ``_since`` it (later than it) takes what they do not (a write stamped before
        # the start and committed after its patient's batch was read fell between both).
        # A version stamped in the same microsecond after the settling is the later's.
        transaction_us = now - 1
        total = self._count_patients(job, caller)
        event = svc.event(
            Tag.EXPORT_STARTED, job, principal=job.principal, reason=f"{total} patients in reach"
        )
        if not svc.move(
            job,
            [Status.APPROVED],
            event,
            owner=self.name,
            status=str(Status.RUNNING),
            transaction_us=transaction_us,
            patients_total=total,
            updated_us=now,
        ):
            raise ContainmentActive("the job changed meanwhile")  # looked at again later
        started = svc.job(job.job_id)
        svc.alert(started, f"bulk export {job.job_id} ({job.level}) by {job.client_id}: running")
        return started

    # --- patients in reach ---------------------------------------------------------------

    def _patients_query(self, job: Job, caller: Caller) -> list[ColumnElement[bool]]:
        """The Patient heads the job covers (``reach.covered_patients``), judged now: a
        patient named in its ``patient`` list who has left the client's reach since
        the kick-off is left out."""
        svc = self.service
        assert caller.actor is not None  # noqa: S101 - a job's caller is a client
        return covered_patients(
            svc.access,
            caller.actor,
            job.level,
            job.group_id,
            job.since_us,
            job.patients,
            svc.now_us(),
        )

    def _count_patients(self, job: Job, caller: Caller) -> int:
        conditions = self._patients_query(job, caller)
        with read_transaction(self.service.jobs.engine) as connection:
            return int(
                connection.execute(
                    select(func.count()).select_from(resource_head).where(*conditions)
                ).scalar_one()
            )

    def _next_patients(self, job: Job, caller: Caller) -> list[tuple[int, str, str]]:
        conditions = self._patients_query(job, caller)
        with read_transaction(self.service.jobs.engine) as connection:
            rows = connection.execute(
                select(
                    resource_head.c.row_id,
                    resource_head.c.resource_id,
                    resource_head.c.patient_pseudonym,
                )
                .where(*conditions, resource_head.c.row_id > job.cursor_row)
                .order_by(resource_head.c.row_id)
                .limit(self.service.settings.batch_patients)
            ).all()
        return [(row.row_id, row.resource_id, row.patient_pseudonym) for row in rows]

    # --- one batch --------------------------------------------------------------------------

    def _batch(self, job: Job, caller: Caller) -> bool:
        """Export and commit the next batch; True when the job has finished."""
        types = frozenset(job.types) if job.types else None
        cursor = job.cursor_row
        if job.level is Level.SYSTEM and job.batches_done == 0:
            wanted = [
                name
                for name, rt in RESOURCE_TYPES.items()
                if not rt.is_patient_data and (types is None or name in types)
            ]
            exported = export_directory(
                self.service.gate, caller, wanted, job.since_us, job.job_id, job.transaction_us
            )
            patients_done = 0
        else:
            patients = self._next_patients(job, caller)
            if not patients:
                self._complete(job)
                return True
            cursor = patients[-1][0]
            exported = export_patients(
                self.service.gate,
                caller,
                [(patient_id, pseudonym) for _, patient_id, pseudonym in patients],
                types,
                job.since_us,
                job.job_id,
                job.transaction_us,
                DELETED_TYPE,
            )
            patients_done = sum(1 for event in exported.events if event.patient_pseudonym)
        self._commit(job, exported, cursor, patients_done)
        return False

    def _commit(self, job: Job, exported: ExportedBatch, cursor: int, patients_done: int) -> None:
        svc = self.service
        # Judged again once the batch is read, before anything of it is written: a
        # principal contained while the batch was read releases none of it.
        reason = svc.standing(job)
        if reason is not None:
            svc.stop(job, reason)
            raise _Stopped
        batch = job.batches_done + 1
        by_type: dict[str, list[Opened]] = {}
        for item in exported.records:
            by_type.setdefault(item.head.resource_type, []).append(item)
        written: list[OutputFile] = []
        for resource_type, items in sorted(by_type.items()):
            name = file_name(batch, resource_type)
            body = b"".join((item.body or b"") + b"\n" for item in items)
            size = svc.files.write(job.job_id, job.key_id, job.principal, name, body)
            written.append(OutputFile(batch, resource_type, name, len(items), size))
        if exported.deleted:
            # Sealed, served, counted and deleted as the batch's other files are: the
            # ids of deleted records are patient data leaving too.
            name = deleted_file_name(batch)
            body = deleted_ndjson(
                (head.resource_type, head.resource_id, head.last_updated_us)
                for head in exported.deleted
            )
            size = svc.files.write(job.job_id, job.key_id, job.principal, name, body)
            written.append(OutputFile(batch, DELETED_TYPE, name, len(exported.deleted), size))
        # Whose records each file holds, sealed beside them: a download names them in the
        # ledger as released to whoever fetched it (adversary round 78). Written for every
        # batch (a directory batch names no one), so a batch without it is one written
        # before downloads were attributed.
        note = released_file_name(batch)
        svc.files.write(
            job.job_id,
            job.key_id,
            job.principal,
            note,
            json.dumps([item.as_json() for item in exported.released]).encode(),
        )
        file_events: list[AuditEvent] = [
            svc.event(
                Tag.EXPORT_FILE_WRITTEN,
                job,
                principal=job.principal,
                file=item.name,
                type=item.resource_type,
                count=item.count,
            )
            for item in written
        ]
        try:
            with write_transaction(svc.jobs.engine) as connection:
                if not svc.jobs.change(
                    connection,
                    job.job_id,
                    [Status.RUNNING],
                    self.name,
                    batches_done=batch,
                    cursor_row=cursor,
                    patients_done=job.patients_done + patients_done,
                    resources_done=job.resources_done + len(exported.records),
                    updated_us=svc.now_us(),
                    lease_until_us=svc.now_us() + svc.settings.lease_us,
                ):
                    raise _Lost
                svc.jobs.add_files(connection, job.job_id, written)
                svc.ledger.writer.record([*exported.events, *file_events], connection)
        except _Lost:
            # Cancelled, stopped, or the lease went to another process: this batch never
            # happened.
            current = svc.jobs.get(job.job_id)
            if current is not None and current.status in (Status.CANCELLED, Status.FAILED):
                svc.files.delete(job.job_id, job.key_id)
            else:
                svc.files.discard(job.job_id, [item.name for item in written] + [note])

    def _complete(self, job: Job) -> None:
        svc = self.service
        now = svc.now_us()
        deleted = sum(
            item.count for item in svc.jobs.files(job.job_id) if item.resource_type == DELETED_TYPE
        )
        listed = f", {deleted} deletions" if deleted else ""
        event = svc.event(
            Tag.EXPORT_COMPLETED,
            job,
            principal=job.principal,
            reason=f"{job.patients_done} patients, {job.resources_done} resources{listed}",
            patients=job.patients_done,
            resources=job.resources_done,
            deleted=deleted,
        )
        if not svc.move(
            job,
            [Status.RUNNING],
            event,
            owner=self.name,
            status=str(Status.COMPLETED),
            finished_us=now,
            expires_us=now + svc.settings.keep_us,
            updated_us=now,
        ):
            return
        svc.ledger.checkpoints.make(f"export {job.job_id} completed")
        svc.alert(
            svc.job(job.job_id),
            f"bulk export {job.job_id} ({job.level}) by {job.client_id}: completed, "
            f"{job.patients_done} patients and {job.resources_done} resources"
            f"{f' ({deleted} deletions listed)' if deleted else ''} left the vault",
        )


class _Lost(Exception):
    pass


class _Stopped(Exception):
    """The job's principal may no longer act: the job was stopped."""


class JobThread:
    """Runs the worker every ``poll_seconds`` in a daemon thread of the server."""

    def __init__(self, worker: Runs, poll_seconds: float, name: str = "export") -> None:
        self.worker = worker
        self.poll_seconds = poll_seconds
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.worker.run_once()
            except Exception as error:  # noqa: BLE001 - the worker goes on; the job is retried
                # The failure's kind and place, never its message or traceback: an import
                # batch's error may quote the records it was writing, and this logger is
                # not one of the server's filtered ones (``logsafe.install``), whose
                # filters do not reach a child logger's records (adversary round 59).
                log.error(
                    "%s worker: a batch failed (%s); it is retried", self.name, describe(error)
                )

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None


#: The export worker's thread (a ``JobThread`` named ``export``).
ExportThread = JobThread
