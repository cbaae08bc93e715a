"""``$import``: FHIR NDJSON sent by an integration client, written as that client's.

- Only a backend service whose scopes allow writes may kick an import off, and only a
  token of its client granted as much may poll its status (its report) or cancel it
  (``JobService.for_granted``); refusals are in the ledger. The body is sealed at once
  with a data key of the job's own (as export files are, ``export/files.py``) and never
  lies on disk in the clear; body and key are deleted (the key shredded) when the job
  ends, however it ends.
- The worker (``worker.py``) runs the body through the bulk ``Loader`` as the client,
  never as the system: each record is judged by the gate as that client's write
  (policy, scopes, writes never widen, containment), validated in full, with one audit
  entry per record. Progress is the bulk import journal's, per batch, so a job resumes
  after a kill from its last committed batch.
- A client has one job queued or running at a time (429 for another meanwhile, as
  exports: ``carevault.jobs``). A job's report (the journal's counts and its refused
  lines) is deleted once kept for the set time after the job ended (``expire``).
- The request, the start, the completion, a cancellation, a stop and the expiry are in
  the ledger.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from sqlalchemy import Connection

from carevault.access.control import AccessControl
from carevault.bulk.journal import FileProgress, Journal
from carevault.export.files import SealedFiles
from carevault.fhir.content import InputLimits
from carevault.gate import Caller, Gate
from carevault.gate.export import held_by_containment, locked_for
from carevault.importjobs.model import (
    BODY,
    ENDED,
    WORKING,
    ImportJob,
    ImportNotFound,
    ImportRefused,
    Status,
    count_lines,
    may_import,
)
from carevault.importjobs.store import ImportJobStore
from carevault.jobs import JobService, caller_json, refusal_outcome
from carevault.keys.envelope import Envelope
from carevault.keys.service import KeyService
from carevault.ledger.events import Outcome, Tag
from carevault.ledger.service import Ledger

KEY_KIND = "import"
READ_ONLY = "patient data is read-only for now: imports wait until it is writable again"
#: The most refused lines a status report lists (the counts are always whole).
REPORTED_REFUSALS = 10_000


@dataclass(frozen=True)
class ImportSettings:
    max_bytes: int
    batch_lines: int
    lease_us: int
    #: How long an ended job's report (its journal and refusals) is kept.
    keep_us: int


@dataclass(frozen=True)
class Report:
    """How far a job has got: lines done of all, accepted, refused (line, reason)."""

    lines_done: int
    lines_total: int
    accepted: int
    rejected: int
    rejections: list[tuple[int, str]]


def import_files(root: Path, keys: KeyService | None, envelope: Envelope) -> SealedFiles:
    """Where sealed ``$import`` bodies wait: data keys of kind ``import``."""
    return SealedFiles(root, keys, envelope, kind=KEY_KIND, purpose="bulk-import")


class ImportService(JobService[ImportJob]):
    jobs: ImportJobStore
    refused_tag = Tag.IMPORT_REFUSED
    refused_type = ImportRefused
    kick_off_grant = "writes (system/<type>.c or .u)"

    def __init__(
        self,
        gate: Gate,
        access: AccessControl,
        ledger: Ledger,
        files: SealedFiles,
        limits: InputLimits,
        settings: ImportSettings,
    ) -> None:
        self.gate = gate
        self.access = access
        self.ledger = ledger
        self.files = files
        self.limits = limits
        self.settings = settings
        self.jobs = ImportJobStore(gate.vault.engine)
        self.journal = Journal(gate.vault.engine, gate.vault.keys)

    def held(self, clinics: frozenset[str] = frozenset()) -> str | None:
        """Why imports must wait now (patient data offline or read-only, key lockdown, or
        one of ``clinics`` locked), or None."""
        found = held_by_containment(self.gate)
        if found is not None:
            return found
        containment = self.gate.containment
        if containment is not None and containment.current().read_only:
            return READ_ONLY
        return locked_for(self.gate, clinics) if clinics else None

    def clinics(self, job_id: str) -> frozenset[str]:
        """The clinics the job's client reached at kick-off."""
        return self.jobs.clinics(job_id)

    def granted(self, caller: Caller) -> bool:
        return may_import(caller.scopes, caller.principal)

    # --- kick-off, status, cancel (the client) --------------------------------------------

    def refuse(
        self, caller: Caller, status: int, message: str, *, insufficient_scope: bool = False
    ) -> ImportRefused:
        """The kick-off's refusal, recorded (raise what it returns): a 429 or 503 as
        the server's state (``refusal_outcome``), not a denial of the caller."""
        self.record_refusal(
            Tag.IMPORT_REFUSED, caller, message, outcome=refusal_outcome(status), status=status
        )
        return ImportRefused(status, message, insufficient_scope=insufficient_scope)

    def allowed(self, caller: Caller) -> None:
        """Refuse (recorded) a caller who may not import, before its body is read."""
        if not self.granted(caller):
            raise self.refuse(
                caller,
                403,
                "$import needs a backend service token whose scopes allow writes"
                " (system/<type>.c or .u)",
                insufficient_scope=caller.principal.startswith("client:"),
            )
        held = self.held(frozenset(caller.actor.clinic_ids) if caller.actor else frozenset())
        if held is not None:
            raise self.refuse(caller, 503, held)
        # Checked before the body is read, and again as the job is stored (a race).
        busy = self.jobs.in_progress(caller.client_id or caller.principal)
        if busy is not None:
            raise self.busy(caller, busy)

    def busy(self, caller: Caller, job_id: str) -> ImportRefused:
        """The refusal of a second kick-off while the client's job ``job_id`` is still
        queued or running, recorded (raise what it returns)."""
        return self.refuse(
            caller,
            429,
            f"this client's import {job_id} is still queued or running: wait for it or"
            " cancel it (DELETE its status URL) before sending another",
        )

    def kick_off(self, caller: Caller, body: bytes) -> ImportJob:
        """A queued job holding ``body`` sealed; ImportRefused (recorded) if not allowed."""
        self.allowed(caller)
        if len(body) > self.settings.max_bytes:
            raise self.refuse(
                caller, 413, f"the body is larger than {self.settings.max_bytes} bytes"
            )
        lines = count_lines(body)
        if lines == 0:
            raise self.refuse(caller, 400, "the body holds no NDJSON line")
        assert caller.actor is not None and caller.scopes is not None  # noqa: S101
        job_id = secrets.token_hex(12)
        key_id = f"{KEY_KIND}:{job_id}"
        self.files.make_key(key_id)
        size = self.files.write(job_id, key_id, caller.principal, BODY, body)
        now = self.now_us()
        values = {
            "job_id": job_id,
            "client_id": caller.client_id or caller.principal,
            "principal": caller.principal,
            "session_id": caller.session_id,
            "caller": caller_json(caller),
            "status": str(Status.QUEUED),
            "digest": hashlib.sha256(job_id.encode() + b"\n" + body).hexdigest(),
            "lines_total": lines,
            "size": len(body),
            "requested_us": now,
            "updated_us": now,
            "key_id": key_id,
        }

        def requested(connection: Connection) -> None:
            job = self.jobs.get(job_id, connection)
            assert job is not None  # noqa: S101 - inserted in this transaction
            self.ledger.writer.record(
                [
                    self.event(
                        Tag.IMPORT_REQUESTED,
                        job,
                        principal=caller.principal,
                        source_address=caller.source_address,
                        reason=f"{lines} lines queued",
                        lines=lines,
                        bytes=len(body),
                        sealed_bytes=size,
                    )
                ],
                connection,
            )

        try:
            busy = self.jobs.create_unless_busy(values, requested)
        except BaseException:
            self.files.delete(job_id, key_id)
            raise
        if busy is not None:
            self.files.delete(job_id, key_id)
            raise self.busy(caller, busy)
        return self.job(job_id)

    def job(self, job_id: str) -> ImportJob:
        found = self.jobs.get(job_id)
        if found is None:
            raise ImportNotFound(f"no import job {job_id[:40]}")
        return found

    def for_client(self, caller: Caller, job_id: str) -> ImportJob:
        """The caller's own job (another client's is as unknown as a missing one)."""
        found = self.jobs.get(job_id)
        if found is None or found.principal != caller.principal:
            raise ImportNotFound("no such import job")
        if found.status is Status.EXPIRED:
            raise ImportNotFound("this import's report has expired and was deleted")
        return found

    def report(self, job: ImportJob) -> Report:
        progress: FileProgress | None = self.journal.progress(job.digest)
        if progress is None:
            return Report(0, job.lines_total, 0, 0, [])
        return Report(
            progress.items_done,
            job.lines_total,
            progress.accepted,
            progress.rejected,
            self.journal.rejections(job.digest, REPORTED_REFUSALS),
        )

    def cancel(self, job: ImportJob, by: str, source: str | None = None) -> bool:
        """Stop the job before its next batch (what was committed stays); its body and
        key deleted now. False if it had already ended."""
        return self._end(
            job, Status.CANCELLED, by, Tag.IMPORT_CANCELLED, "cancelled by the client", source
        )

    # --- the job's principal ---------------------------------------------------------------

    def standing(self, job: ImportJob) -> str | None:
        """Why the job's principal may no longer act (its session ended, its client app
        revoked, its account suspended: ``Sessions.standing``, read fresh), or None."""
        if job.session_id is None:
            return "the job's session is not known"
        return self.access.sessions.standing(job.session_id) or None

    def stop(self, job: ImportJob, reason: str) -> bool:
        """End a job whose principal may no longer act (or whose body is gone): failed
        with the reason, its body and key deleted; False if it had already ended."""
        why = f"stopped: {reason}"[:500]
        return self._end(
            job, Status.FAILED, "system:carevault", Tag.IMPORT_STOPPED, why, None, error=why
        )

    def _end(
        self,
        job: ImportJob,
        status: Status,
        by: str,
        tag: Tag,
        reason: str,
        source: str | None,
        error: str | None = None,
    ) -> bool:
        now = self.now_us()
        report = self.report(job)
        event = self.event(
            tag,
            job,
            principal=by,
            outcome=Outcome.FAILED if status is Status.FAILED else Outcome.SUCCESS,
            reason=reason,
            source_address=source,
            was=str(job.status),
            accepted=report.accepted,
            rejected=report.rejected,
        )
        return self.move(
            job,
            WORKING,
            event,
            ended=True,
            status=str(status),
            error=error,
            finished_us=now,
            updated_us=now,
            lease_owner=None,
            lease_until_us=None,
        )

    def complete(self, job: ImportJob, owner: str) -> bool:
        """Every line done: completed, with its counts in the ledger; body and key gone."""
        now = self.now_us()
        report = self.report(job)
        event = self.event(
            Tag.IMPORT_COMPLETED,
            job,
            principal=job.principal,
            reason=f"{report.accepted} accepted, {report.rejected} refused",
            accepted=report.accepted,
            rejected=report.rejected,
        )
        return self.move(
            job,
            [Status.RUNNING],
            event,
            ended=True,
            owner=owner,
            status=str(Status.COMPLETED),
            finished_us=now,
            updated_us=now,
        )

    def expire(self) -> int:
        """Delete what is left of ended jobs kept past the set time (``keep_us`` after
        they ended, as export files are): the journal's counts and refusals (reasons
        by line), and the sealed body and its key if anything of them is left; the job
        stays, as ``expired``, so the ledger's entries still name it. How many ended."""
        now = self.now_us()
        expired = 0
        for job in self.jobs.all(ENDED):
            if job.finished_us is None or job.finished_us + self.settings.keep_us > now:
                continue
            event = self.event(
                Tag.IMPORT_EXPIRED,
                job,
                principal="system:carevault",
                reason="report deleted: kept for the set time",
                was=str(job.status),
            )
            if self.move(
                job,
                [job.status],
                event,
                ended=True,
                then=partial(self.journal.forget, file_sha256=job.digest),
                status=str(Status.EXPIRED),
                updated_us=now,
            ):
                expired += 1
        return expired
