"""Bulk Data export, guarded: the exfiltration path, made the most visible thing here.

- Only a backend service granted ``system/*.read`` may kick an export off; the job then
  waits for a privacy officer's approval (two different officers for a system-level
  export), given with a fresh TOTP code, like every containment action.
- Every step is in the audit ledger: the request, each approval or refusal, the start,
  each file written, one ``fhir:resource:export`` entry per exported patient (which the
  detectors and the incident scope count as a release), the completion, every download,
  the cancellation or expiry; and it raises an alert that stays open for review.
- The worker (``worker.py``) reads through the gate, as the client; files are sealed
  with the job's own data key and deleted, key and all, on cancel or expiry.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from carevault.access.accounts import (
    Account,
    NotAnOfficer,
    SignInFailed,
    StaffAccounts,
    officer_refusal,
)
from carevault.access.clients import ClientApps
from carevault.access.control import AccessControl
from carevault.access.scopes import InvalidScope, whole_account
from carevault.access.scopes import parse as parse_scopes
from carevault.containment.service import ContainmentRefused, Officer
from carevault.db import write_transaction
from carevault.detect.alerts import AlertStore
from carevault.detect.model import Access, Finding, Severity
from carevault.domain.roles import GROUP_WIDE, Role
from carevault.export.files import ExportFiles, released_file_name
from carevault.export.model import (
    LIVE,
    ExportNotFound,
    ExportRefused,
    Job,
    Level,
    OutputFile,
    Request,
    Status,
    body_params,
    body_patients,
    may_export,
    parse_request,
    quoting,
)
from carevault.export.reach import covered_patients, outside, patient_held
from carevault.export.store import JobStore
from carevault.fhir.parameters import Part
from carevault.gate import Caller, Gate
from carevault.gate.export import Released, file_released, held_by_containment, locked_for
from carevault.jobs import JobService, caller_json, refusal_outcome
from carevault.keys.words import SealedWords, entry_reason, entry_words
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.service import Ledger

ALERT_DETECTOR = "bulk-export"
_CONTEXTS = frozenset({"patient", "user", "system"})


@dataclass(frozen=True)
class ExportSettings:
    keep_us: int
    batch_patients: int
    lease_us: int


#: What an officer's reasons for ending an export are sealed as.
EXPORT_WORDS = "carevault-export-reason/1"


class ExportService(JobService[Job]):
    jobs: JobStore
    refused_tag = Tag.EXPORT_REFUSED
    refused_type = ExportRefused
    kick_off_grant = "system/*.read"

    def __init__(
        self,
        gate: Gate,
        access: AccessControl,
        clients: ClientApps,
        accounts: StaffAccounts,
        ledger: Ledger,
        files: ExportFiles,
        alerts: AlertStore | None,
        settings: ExportSettings,
        words: SealedWords | None = None,
    ) -> None:
        """``words`` seals the reason an officer gives for denying or cancelling an export
        into its ledger entry (``keys.words.officer_words``); None keeps it as typed."""
        self.words = words
        self.gate = gate
        self.access = access
        self.clients = clients
        self.accounts = accounts
        self.ledger = ledger
        self.files = files
        self.alerts = alerts
        self.settings = settings
        self.jobs = JobStore(gate.vault.engine)

    def held(self) -> str | None:
        return held_by_containment(self.gate)

    def granted(self, caller: Caller) -> bool:
        return may_export(caller.scopes, caller.principal)

    # --- the ledger and the alert ------------------------------------------------------

    def job_detail(self, job: Job) -> dict[str, Any]:
        return {"job": job.job_id, "level": str(job.level)}

    def alert(self, job: Job, explanation: str) -> None:
        """One open alert per job, its explanation brought up to date at each step, so
        that an export is on the desk of whoever watches alerts until someone closes it."""
        if self.alerts is None:
            return
        subject = Access(
            position=-1,
            at_us=self.now_us(),
            tag=str(Tag.EXPORT_REQUESTED),
            outcome="success",
            principal=job.principal,
            role=str(Role.INTEGRATION),
            client_id=job.client_id,
        )
        finding = Finding(ALERT_DETECTOR, Severity.HIGH, job.job_id, explanation, subject)
        with write_transaction(self.jobs.engine) as connection:
            self.alerts.upsert(connection, [finding], self.now_us())

    # --- kick-off, status, files (the client) -------------------------------------------

    def kick_off(
        self,
        caller: Caller,
        level: Level,
        group_id: str | None,
        params: Sequence[tuple[str, str]],
        request_url: str,
        body: Sequence[Part] = (),
    ) -> Job:
        """A pending job awaiting approval; ExportRefused (recorded) if not allowed.
        ``params`` are the query string's, ``body`` a POST's Parameters: every one is
        applied or the kick-off refused, naming it (never ignored)."""
        try:
            if not self.granted(caller):
                # A backend service asked with too little scope (RFC 6750's challenge
                # says so); a staff member's token is refused for who it is.
                raise ExportRefused(
                    403,
                    "bulk export needs a backend service token granted system/*.read",
                    insufficient_scope=caller.principal.startswith("client:"),
                )
            request = parse_request(
                level, group_id, [*params, *body_params(body)], body_patients(body)
            )
            if level is Level.GROUP and group_id not in self.access.known_clinics():
                raise quoting(404, "no Group {} (a clinic id)", group_id or "")
            if level is Level.GROUP and not self._reaches_clinic(caller, group_id):
                # A Group is its clinic's registered patients: a client of another clinic
                # would get those of its own patients registered there too, which none of
                # its reads shows (the other clinic's membership: adversary round 59).
                raise ExportRefused(
                    403, "a Group (a clinic) is exported only by a client of that clinic"
                )
            self._refuse_outside_reach(caller, request)
            held = self.held()
            if held is not None:
                raise ExportRefused(503, held)
            client_id = caller.client_id or caller.principal
            # Checked before a key is made, and again as the job is stored (a race).
            busy = self.jobs.in_progress(client_id)
            if busy is None:
                job_id = secrets.token_hex(12)
                key_id = f"export:{job_id}"
                self.files.make_key(key_id)
                busy = self.jobs.create_unless_busy(
                    self._new_job(caller, level, group_id, request, request_url, job_id)
                )
                if busy is not None:
                    self.files.delete(job_id, key_id)
            if busy is not None:
                raise ExportRefused(
                    429,
                    f"this client's export {busy} is still in progress (awaiting approval,"
                    " queued or running): wait for it or cancel it (DELETE its status URL)"
                    " before asking for another",
                )
        except ExportRefused as refused:
            self.record_refusal(
                Tag.EXPORT_REFUSED,
                caller,
                refused.logged,
                outcome=refusal_outcome(refused.status),
                level=str(level),
            )
            raise
        job = self.job(job_id)
        # The narrowing, by count, beside the types (the job keeps the ids).
        narrowed: dict[str, Any] = {"patients": len(request.patients)} if request.patients else {}
        self.record(
            [
                self.event(
                    Tag.EXPORT_REQUESTED,
                    job,
                    principal=caller.principal,
                    source_address=caller.source_address,
                    reason="awaiting privacy officer approval",
                    types=list(request.types),
                    group=group_id,
                    **narrowed,
                )
            ]
        )
        named = f" for {len(request.patients)} named patients" if request.patients else ""
        self.alert(job, f"bulk export {job_id} ({level}){named} requested by {job.client_id}")
        return job

    def _refuse_outside_reach(self, caller: Caller, request: Request) -> None:
        """ExportRefused(400) naming the first ``patient`` the export could not export
        without the parameter (``reach.covered_patients``, as the worker reads it): the
        IG's error for a patient "not present on the server (or ... not members of the
        group)". An unknown id, another clinic's patient, one outside the Group and one
        deleted are refused in the same words, so the answer tells no more than a read
        of the client's own patients does: which ids are among them."""
        if not request.patients:
            return
        if caller.actor is None:
            missing = list(request.patients)
        else:
            conditions = covered_patients(
                self.access,
                caller.actor,
                request.level,
                request.group_id,
                request.since_us,
                request.patients,
                self.now_us(),
            )
            missing = outside(self.jobs.engine, conditions, request.patients)
        if missing:
            message = "patient: Patient/{} is not a patient this export may reach"
            count = f" ({len(missing)} of those named are not)"
            raise ExportRefused(
                400,
                message.format(missing[0]) + count,
                # The ids are kept where a record holds them (a reach past the client's
                # clinics is evidence), not where one was typed (round 67).
                logged=message.format(self._named_patient(missing[0])) + count,
            )

    def _named_patient(self, patient_id: str) -> str:
        """How a refusal's ledger entry names a patient the kick-off named: by id where a
        record holds it, not where the id was typed (it may be a name or a number)."""
        return (
            patient_id if patient_held(self.jobs.engine, patient_id) else "(an id no record holds)"
        )

    def _new_job(
        self,
        caller: Caller,
        level: Level,
        group_id: str | None,
        request: Request,
        request_url: str,
        job_id: str,
    ) -> dict[str, Any]:
        """The stored row of a job just asked for: pending, awaiting its approvals."""
        assert caller.actor is not None and caller.scopes is not None  # noqa: S101
        now = self.now_us()
        return {
            "job_id": job_id,
            "level": str(level),
            "group_id": group_id,
            "client_id": caller.client_id or caller.principal,
            "principal": caller.principal,
            "session_id": caller.session_id,
            "caller": caller_json(caller),
            "types": ",".join(request.types),
            "since_us": request.since_us,
            "patients": json.dumps(list(request.patients)) if request.patients else None,
            "request_url": request_url[:2000],
            "status": str(Status.PENDING),
            "approvals_needed": self.approvals_needed(caller, level),
            "approvals": "[]",
            "requested_us": now,
            "updated_us": now,
            "batches_done": 0,
            "cursor_row": 0,
            "patients_total": 0,
            "patients_done": 0,
            "resources_done": 0,
            "key_id": f"export:{job_id}",
        }

    def job(self, job_id: str) -> Job:
        found = self.jobs.get(job_id)
        if found is None:
            raise ExportNotFound(f"no export job {job_id[:40]}")
        return found

    def for_client(self, caller: Caller, job_id: str) -> Job:
        """The caller's own job (another client's is as unknown as a missing one)."""
        found = self.jobs.get(job_id)
        if found is None or found.principal != caller.principal:
            raise ExportNotFound("no such export job")
        if found.status in (Status.CANCELLED, Status.EXPIRED) or self._expire_if_due(found):
            raise ExportNotFound("this export was cancelled or has expired; its files are gone")
        return found

    # --- containment: a job is only as good as its principal ---------------------------

    def standing(self, job: Job) -> str | None:
        """Why the job's principal may no longer act, or None. The rules are those every
        request's token meets (``Sessions.standing``: the kick-off session revoked, the
        client app revoked or gone, its integration account suspended), read fresh; only
        the token's own expiry is not held against a job that outlives it."""
        if job.session_id is None:
            return "the job's session is not known"
        return self.access.sessions.standing(job.session_id) or None

    def stop(self, job: Job, reason: str) -> bool:
        """End a job whose principal may no longer act: failed with the reason (in the
        ledger, ``export show`` and the status poll), its files and key deleted so that
        nothing of it can be downloaded later; False if it had already ended."""
        now = self.now_us()
        why = f"stopped: {reason}"[:500]
        event = self.event(
            Tag.EXPORT_STOPPED,
            job,
            principal="system:carevault",
            outcome=Outcome.FAILED,
            reason=why,
            was=str(job.status),
        )
        if not self.move(
            job,
            LIVE,
            event,
            ended=True,
            then=lambda connection: self.jobs.drop_files(connection, job.job_id),
            status=str(Status.FAILED),
            error=why,
            finished_us=now,
            expires_us=now + self.settings.keep_us,
            updated_us=now,
            lease_owner=None,
            lease_until_us=None,
        ):
            return False
        self.alert(job, f"bulk export {job.job_id} ({job.level}) by {job.client_id}: {why}")
        return True

    def stop_contained(self) -> int:
        """Stop every live job (awaiting approval, queued, running, or completed with
        files to fetch) whose principal may no longer act; how many were stopped."""
        stopped = 0
        for job in self.jobs.all(LIVE):
            reason = self.standing(job)
            if reason is not None and self.stop(job, reason):
                stopped += 1
        return stopped

    def output(self, job: Job) -> list[OutputFile]:
        return self.jobs.files(job.job_id)

    def files_held(self, job: Job) -> str | None:
        """Why the files of ``job`` may not be downloaded now, or None. Files already
        written are patient data leaving like any read: while patient data is offline,
        keys are locked down or a clinic the client reached at kick-off is locked, they
        wait, as running jobs do. The download and the status poll both ask this, so a
        poll never hands out a manifest whose files would each be refused."""
        return self.held() or locked_for(self.gate, self.jobs.clinics(job.job_id))

    def poll(self, caller: Caller, job_id: str) -> tuple[Job, str | None]:
        """The caller's job for a status poll (``for_granted``), and why it waits on
        containment now, or None: its files held (``files_held``) if it is complete, its
        run held (``held``) if not. A job an officer denied is refused 403, recorded as
        FAILED: an answer about the job, not a denial of the caller, whom the ``denials``
        detector suspended after 20 polls when the refusal middleware recorded each as
        DENIED (integrator round 85)."""
        job = self.for_granted(caller, job_id, "an export's status")
        if job.status is Status.DENIED:
            reason = "a privacy officer denied this export"
            self.record_refusal(Tag.EXPORT_REFUSED, caller, reason, job=job, outcome=Outcome.FAILED)
            raise ExportRefused(403, reason)
        if job.status is Status.COMPLETED:
            return job, self.files_held(job)
        return job, None if job.status is Status.FAILED else self.held()

    def download(self, caller: Caller, job_id: str, name: str) -> bytes:
        """One file's NDJSON, to the client that asked for the export; in the ledger."""
        job = self.for_granted(caller, job_id, "a file of an export")
        if job.status is not Status.COMPLETED:
            raise ExportNotFound("the export is not complete")
        # The caller's own token passed; the job's principal is judged afresh too, so a
        # token issued before a suspension (or a cached session state) fetches nothing.
        reason = self.standing(job)
        if reason is not None:
            self.stop(job, reason)
            raise ExportNotFound("this export was stopped; its files are gone")
        known = {item.name: item for item in self.output(job)}
        if name not in known:
            raise ExportNotFound("no such file in this export")
        held = self.files_held(job)
        if held is not None:
            # The server's state, which the client is told to wait out: not a denial of
            # the caller (a client fetching its manifest once was suspended by
            # ``denials`` after 20 files: integrator round 85).
            self.record_refusal(
                Tag.EXPORT_REFUSED,
                caller,
                f"download held: {held}",
                job=job,
                outcome=refusal_outcome(503),
                file=name,
            )
            raise ExportRefused(503, held)
        self.record(
            [
                self.event(
                    Tag.EXPORT_DOWNLOADED,
                    job,
                    principal=caller.principal,
                    source_address=caller.source_address,
                    file=name,
                    count=known[name].count,
                    # Where the export was asked for from: the detectors weigh a file
                    # fetched from elsewhere (``export-download``).
                    asked_from=self.asked_from(job),
                ),
                *self._released(caller, job, known[name]),
            ]
        )
        try:
            return self.files.read(job.job_id, job.key_id, caller.principal, name)
        except FileNotFoundError:
            raise ExportNotFound("the file is gone") from None

    def asked_from(self, job: Job) -> str | None:
        """The address the job's client kicked it off from (its stored caller)."""
        found = json.loads(self.jobs.stored_caller(job.job_id)).get("source_address")
        return found if isinstance(found, str) else None

    def _released(self, caller: Caller, job: Job, item: OutputFile) -> list[AuditEvent]:
        """One entry per patient the file holds, as released to ``caller`` now: the
        batch's entries were written when the file was, perhaps long before whoever holds
        the client's secret fetched it (adversary round 78). A batch with no note of its
        patients (written by an earlier build) is not served: who it would release is
        not known (fail closed; export again)."""
        try:
            note = self.files.read(
                job.job_id, job.key_id, caller.principal, released_file_name(item.batch)
            )
        except FileNotFoundError:
            refused = "this export's files do not say whose records they hold; export again"
            self.record_refusal(Tag.EXPORT_REFUSED, caller, refused, job=job, file=item.name)
            raise ExportNotFound(refused) from None
        released = [Released.from_json(entry) for entry in json.loads(note)]
        return file_released(
            caller,
            released,
            item.resource_type,
            self.now_us(),
            {**self.job_detail(job), "file": item.name},
        )

    # --- the privacy officer's decisions ----------------------------------------------------

    def officer(self, officer: Officer, action: str, job: Job | None = None) -> str:
        """The officer's principal, after a fresh TOTP code; refusals are recorded."""
        return f"staff:{self._confirmed(officer, action, job).username}"

    def _confirmed(self, officer: Officer, action: str, job: Job | None) -> Account:
        try:
            return self.accounts.confirm_officer(
                officer.username, officer.totp, officer.source_address
            )
        except SignInFailed as failure:
            detail = {}
            if isinstance(failure, NotAnOfficer):
                detail["role"] = str(failure.account.role)
            self._refuse(
                job, f"staff:{officer.username}", officer, f"{action}: {failure.reason}", **detail
            )
            raise ContainmentRefused(officer_refusal(failure)) from None

    def _refuse(
        self, job: Job | None, who: str, officer: Officer, reason: str, **detail: Any
    ) -> None:
        self.record(
            [
                self.event(
                    Tag.EXPORT_REFUSED,
                    job,
                    principal=who,
                    outcome=Outcome.DENIED,
                    source_address=officer.source_address,
                    reason=reason,
                    **detail,
                )
            ]
        )

    def approvals_needed(self, caller: Caller, level: Level) -> int:
        """Two officers for an export of the whole group, and for any export by a client
        whose reach is the whole group; one for an export by a client of part of it.

        System level is the whole group. A Patient export by a client that reaches every
        clinic is the same patients, less the directory. A Group export by such a client
        is one clinic, but the client may ask for each clinic in turn (one export at a
        time, each approved by one officer, the same one each time): together they are
        the whole group, approved by one person (adversary round 59). So what a client
        may take with one officer's word is bounded by its reach, not by the level it
        asks at."""
        if level is Level.SYSTEM:
            return 2
        return 2 if self._reaches_whole_group(caller) else 1

    @staticmethod
    def _reaches_clinic(caller: Caller, clinic_id: str | None) -> bool:
        """Whether the client works at ``clinic_id`` (a group-wide role reaches every
        clinic); fails closed."""
        actor = caller.actor
        if actor is None or clinic_id is None:
            return False
        return actor.role in GROUP_WIDE or clinic_id in actor.clinic_ids

    def _reaches_whole_group(self, caller: Caller) -> bool:
        """Whether the client reaches every patient of the group: the home clinic of
        every Patient record (a patient registered elsewhere too is reached through
        their home); fails closed.

        A clinic where staff or apps work but no patient is at home adds no patient to
        an export: counting it (a clinic opening, staff set up before its patients come;
        an app registered with a clinic id no one uses) let a client of every clinic that
        holds patients export all of them on one officer's word (adversary round 59)."""
        actor = caller.actor
        if actor is None or actor.role in GROUP_WIDE:
            return True
        homes = self.jobs.patient_clinics()
        return not homes or homes <= actor.clinic_ids

    def _two_person_refusal(self, job: Job, account: Account, session_id: str | None) -> str | None:
        """Why this approval cannot count towards a two-person export, or None.

        Each approval must come from the approving officer's own live, signed-in,
        whole-account session, and no session may approve twice. A username and a
        typed code prove only that someone holds the authenticator (which one officer
        could have re-issued for another): a session also needed that officer's
        password, and every session of an account ends when its authenticator is reset.
        """
        if session_id is None:
            return (
                "a two-person export is approved by each officer from their own signed-in"
                " session (POST /admin/exports/{id}/approve), not with a typed username"
                " and code"
            )
        state = self.access.sessions.state(session_id, fresh=True)
        if not state.live or state.account_id != account.account_id:
            return "the approving session is not this officer's live session"
        try:
            scopes = parse_scopes(state.scopes, allowed_contexts=_CONTEXTS)
        except InvalidScope:
            scopes = None
        if not whole_account(scopes):
            return "the approving session's token was granted less than the officer's tools"
        if any(item.session_id == session_id for item in job.approvals):
            return "a second, different privacy officer must approve, from their own session"
        return None

    def approve(self, officer: Officer, job_id: str, session_id: str | None = None) -> Job:
        """One officer's approval. ``session_id``: the officer's signed-in session the
        approval comes from (the HTTP desk); a two-person export counts only those."""
        job = self.job(job_id)
        account = self._confirmed(officer, f"approve export {job_id}", job)
        who = f"staff:{account.username}"
        if job.status is not Status.PENDING or self._expire_if_due(job):
            status = Status.EXPIRED if job.status is Status.PENDING else job.status
            raise ValueError(f"export {job_id} is {status}, not awaiting approval")
        # One person is one approval, whichever of their officer logins gives it
        # (accounts naming one practitioner: adversary round 57).
        if any(
            self.accounts.same_person(item.officer.removeprefix("staff:"), account.username)
            for item in job.approvals
        ):
            refusal: str | None = "a second, different privacy officer must approve"
        elif job.approvals_needed > 1:
            refusal = self._two_person_refusal(job, account, session_id)
        else:
            refusal = None
        if refusal is not None:
            self._refuse(job, who, officer, refusal, role=str(Role.PRIVACY_OFFICER))
            raise ContainmentRefused(refusal)
        approvals: list[dict[str, Any]] = [
            {"officer": a.officer, "at_us": a.at_us, "session": a.session_id} for a in job.approvals
        ]
        approvals.append({"officer": who, "at_us": self.now_us(), "session": session_id})
        done = len(approvals) >= job.approvals_needed
        event = self.event(
            Tag.EXPORT_APPROVED,
            job,
            principal=who,
            role=str(Role.PRIVACY_OFFICER),
            session=session_id,
            source_address=officer.source_address,
            reason=f"approval {len(approvals)} of {job.approvals_needed}",
        )
        if not self.move(
            job,
            [Status.PENDING],
            event,
            approvals=approvals,
            status=str(Status.APPROVED if done else Status.PENDING),
            updated_us=self.now_us(),
        ):
            raise ValueError(f"export {job_id} changed meanwhile; look again")
        self.ledger.checkpoints.make(f"export {job_id} approval")
        approved = self.job(job_id)
        self.alert(
            approved,
            f"bulk export {job_id} ({job.level}) by {job.client_id}: approved by "
            + ", ".join(a.officer for a in approved.approvals)
            + ("" if done else f"; {job.approvals_needed - len(approvals)} more needed"),
        )
        return approved

    def deny(self, officer: Officer, job_id: str, reason: str) -> Job:
        job = self.job(job_id)
        who = self.officer(officer, f"deny export {job_id}", job)
        self._end(job, Status.DENIED, [Status.PENDING], who, Tag.EXPORT_DENIED, reason)
        return self.job(job_id)

    def cancel(self, job_id: str, by: str, reason: str, source: str | None = None) -> Job:
        """Stop the job and delete its files and key (the client's DELETE, an officer)."""
        job = self.job(job_id)
        live = [Status.PENDING, Status.APPROVED, Status.RUNNING, Status.COMPLETED, Status.FAILED]
        self._end(job, Status.CANCELLED, live, by, Tag.EXPORT_CANCELLED, reason, source)
        return self.job(job_id)

    def _end(
        self,
        job: Job,
        status: Status,
        when: list[Status],
        by: str,
        tag: Tag,
        reason: str,
        source: str | None = None,
    ) -> None:
        said, sealed = entry_words(
            self.words, ended_binding(tag, job.job_id), reason[:500],
            f"{status} (the reason sealed in the detail)",
        )  # fmt: skip
        ending = self.event(tag, job, principal=by, reason=said, source_address=source)
        if not self.move(
            job,
            when,
            replace(ending, detail={**ending.detail, **sealed}),
            ended=True,
            then=lambda connection: self.jobs.drop_files(connection, job.job_id),
            status=str(status),
            updated_us=self.now_us(),
            finished_us=self.now_us(),
            lease_owner=None,
            lease_until_us=None,
        ):
            raise ValueError(f"export {job.job_id} is {self.job(job.job_id).status}")
        self.alert(job, f"bulk export {job.job_id} ({job.level}) by {job.client_id}: {status}")

    def reason_of(self, event: AuditEvent) -> str:
        """The reason an export's denial or cancellation ``event`` records, opened."""
        binding = ended_binding(Tag(event.tag), str(event.detail.get("job", "")))
        return entry_reason(self.words, binding, event.reason or "", event.detail)

    def expire(self) -> int:
        """Delete the files of finished jobs past their time, and drop requests that
        waited longer than that for approval; how many jobs ended."""
        return sum(
            self._expire_if_due(job)
            for job in self.jobs.all([Status.COMPLETED, Status.PENDING, Status.FAILED])
        )

    def _due_us(self, job: Job) -> int | None:
        """When ``job`` ends by expiry: its files' time, or the end of its wait for
        approval; None if it does not (it is running, or has ended)."""
        if job.status is Status.PENDING:
            return job.requested_us + self.settings.keep_us
        if job.status in (Status.COMPLETED, Status.FAILED):
            return job.expires_us
        return None

    def _expire_if_due(self, job: Job) -> bool:
        """End ``job`` (files and key deleted) if its time is up; whether it is expired.

        The worker's sweep runs between jobs, and not at all in a process without the
        worker: asked for before the sweep came, a job past its time is ended here, so
        that its files never leave after the ``Expires`` its manifest gave, nor is an
        approval given to a request that waited past its time."""
        due = self._due_us(job)
        if due is None or due > self.now_us():
            return False
        try:
            self._end(
                job,
                Status.EXPIRED,
                [job.status],
                "system:carevault",
                Tag.EXPORT_EXPIRED,
                "files deleted: kept for the set time"
                if job.status is not Status.PENDING
                else "not approved in time",
            )
        except ValueError:
            # Changed meanwhile (cancelled, approved, expired by another process).
            return self.job(job.job_id).status is Status.EXPIRED
        return True


def ended_binding(tag: Tag, job_id: str) -> str:
    """What the reason a job ended for is sealed bound to (a job ends once)."""
    return f"{tag.value}|{job_id}"
