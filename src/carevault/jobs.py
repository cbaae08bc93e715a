"""Jobs that a server process runs in the background under a lease (Bulk Data exports,
``$import`` jobs): stored one row each, every change of status a conditional UPDATE
(``WHERE status IN ...``), so that two processes (two officers at once, a cancel racing
the worker) cannot both win; the loser sees a row count of zero. A job is leased to one
process at a time; a process that died loses its lease when it lapses, and another (or
the same, restarted) takes the job over.

A client has at most one job of a kind in progress (``create_unless_busy``): a second
kick-off is refused with 429 until the first ends. ``JobService`` is what the services
of both kinds share: their audit entries, each change of a job's status made in one
transaction with its entry, and the rule that a request about a job (its status, an
export's files, an import's cancellation) needs a token granted what the kick-off needed.
An export's cancellation releases nothing and takes any token of its client."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Connection, Engine, RowMapping, Table, insert, or_, select, text, update

from carevault.db import read_transaction, write_transaction
from carevault.domain.jobs import JobRefused
from carevault.export.files import SealedFiles
from carevault.gate import Caller, Gate
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.service import Ledger

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


#: The refusals that say *when*, not whether: 429 (the client's previous job is still in
#: progress) and 503 (containment holds the data). The server's state, which the client
#: is told to wait out (``Retry-After``), not an attempt beyond the caller's authority.
#: Recorded as DENIED, a Bulk Data client that retried as told was suspended by the
#: ``denials`` detector after 20 of them, its approved export destroyed (integrator
#: round 85).
WAIT_STATUSES = frozenset({429, 503})


def refusal_outcome(status: int) -> Outcome:
    """How the ledger records a refusal answered ``status``: FAILED for one that asks the
    caller to wait (``WAIT_STATUSES``), DENIED for the rest (400, 403, 404, 413, ...)."""
    return Outcome.FAILED if status in WAIT_STATUSES else Outcome.DENIED


class LeasedJobs(Generic[J]):
    """A table of jobs (``job_id``, ``status``, ``caller``, ``requested_us``,
    ``lease_owner``, ``lease_until_us``, ``client_id`` columns) read as ``J`` by
    ``from_row``; ``working``: the statuses a worker may take a job in;
    ``in_progress``: those of a job that keeps its client from starting another (by
    default ``working``)."""

    def __init__(
        self,
        engine: Engine,
        table: Table,
        from_row: Callable[[RowMapping], J],
        working: Collection[str],
        in_progress: Collection[str] | None = None,
    ) -> None:
        self.engine = engine
        self.table = table
        self._from_row = from_row
        self._working = sorted(str(status) for status in working)
        busy = working if in_progress is None else in_progress
        self._in_progress = sorted(str(status) for status in busy)

    def create_unless_busy(
        self, values: dict[str, Any], then: Callable[[Connection], None] | None = None
    ) -> str | None:
        """Store the job (and run ``then`` in the same transaction) unless its client
        already has one in progress; that job's id if so (nothing stored), else None.
        Two kick-offs at once cannot both pass: SQLite's write lock, or a PostgreSQL
        lock on the client taken before looking, orders them."""
        with write_transaction(self.engine) as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                    {"key": f"carevault-{self.table.name}:{values['client_id']}"},
                )
            busy = self.in_progress(values["client_id"], connection)
            if busy is not None:
                return busy
            connection.execute(insert(self.table).values(**values))
            if then is not None:
                then(connection)
        return None

    def in_progress(self, client_id: str, connection: Connection | None = None) -> str | None:
        """The id of the client's job in progress, if any."""
        table = self.table
        query = (
            select(table.c.job_id)
            .where(table.c.client_id == client_id, table.c.status.in_(self._in_progress))
            .limit(1)
        )
        if connection is not None:
            found = connection.execute(query).scalar_one_or_none()
        else:
            with read_transaction(self.engine) as reading:
                found = reading.execute(query).scalar_one_or_none()
        return None if found is None else str(found)

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


class StoredJob(Protocol):
    """A job a client kicked off, as its service reads it."""

    @property
    def job_id(self) -> str: ...

    @property
    def client_id(self) -> str: ...

    @property
    def key_id(self) -> str: ...


S = TypeVar("S", bound=StoredJob)


class JobService(ABC, Generic[S]):
    """What the services of exports and ``$import`` jobs share: the job's audit entries,
    each change of its status recorded in the ledger in the transaction that makes it
    (so the ledger never tells of a change that did not happen, nor misses one), and
    who may ask about a job once it is kicked off (``for_granted``). Subclasses set
    ``gate``, ``ledger``, ``jobs``, ``files``, ``refused_tag``, ``refused_type`` and
    ``kick_off_grant``."""

    gate: Gate
    ledger: Ledger
    jobs: LeasedJobs[S]
    files: SealedFiles
    #: The ledger's tag of a refused request about a job of this kind.
    refused_tag: Tag
    #: What a refusal of this kind raises (the routes answer it with its status).
    refused_type: type[JobRefused]
    #: What a kick-off's token must be granted, as a refusal names it.
    kick_off_grant: str

    def now_us(self) -> int:
        return self.gate.vault_now()

    @abstractmethod
    def granted(self, caller: Caller) -> bool:
        """Whether the caller's token is granted what a kick-off needs."""

    @abstractmethod
    def for_client(self, caller: Caller, job_id: str) -> S:
        """The caller's own job (another client's is as unknown as a missing one)."""

    def for_granted(self, caller: Caller, job_id: str, what: str) -> S:
        """The caller's own job (``for_client``), to a token granted what its kick-off
        needed (``granted``). Bulk Data v2: status requests "SHALL be protected the same
        way the Bulk Data Kick-off Request"; the same client's token granted less read
        an export's manifest and files (integrator round 60), and an import's report or
        cancelled the import. Refused 403 with the ``insufficient_scope`` challenge,
        recorded; the job is untouched. Another client's token is answered by
        ``for_client`` first (404), so the refusal tells it nothing."""
        job = self.for_client(caller, job_id)
        if not self.granted(caller):
            reason = f"{what} needs a token granted {self.kick_off_grant}, as the kick-off did"
            self.record_refusal(self.refused_tag, caller, reason, job=job)
            raise self.refused_type(403, reason, insufficient_scope=True)
        return job

    def job_detail(self, job: S) -> dict[str, Any]:
        """What every audit entry of ``job`` carries in its detail."""
        return {"job": job.job_id}

    def event(
        self,
        tag: Tag,
        job: S | None,
        *,
        principal: str | None,
        outcome: Outcome = Outcome.SUCCESS,
        reason: str = "",
        role: str | None = None,
        source_address: str | None = None,
        **detail: Any,
    ) -> AuditEvent:
        return AuditEvent(
            tag=tag,
            outcome=outcome,
            at_us=self.now_us(),
            principal=principal,
            role=role,
            client_id=job.client_id if job else None,
            source_address=source_address,
            reason=reason,
            detail={**(self.job_detail(job) if job else {}), **detail},
        )

    def record(self, events: Sequence[AuditEvent]) -> None:
        self.ledger.writer.record(events)

    def record_refusal(
        self,
        tag: Tag,
        caller: Caller,
        message: str,
        *,
        job: S | None = None,
        outcome: Outcome = Outcome.DENIED,
        **detail: Any,
    ) -> None:
        """A request refused, as the caller asked it: a kick-off (no job was stored), or a
        request about ``job`` (its status, its files). ``outcome``: DENIED for a request
        beyond what the caller may do, FAILED for one refused for the server's state
        (``refusal_outcome``), which the ``denials`` detector does not count."""
        self.record(
            [
                AuditEvent(
                    tag=tag,
                    outcome=outcome,
                    at_us=self.now_us(),
                    principal=caller.principal,
                    client_id=caller.client_id,
                    session_id=caller.session_id,
                    source_address=caller.source_address,
                    reason=message,
                    detail={**(self.job_detail(job) if job else {}), **detail},
                )
            ]
        )

    def move(
        self,
        job: S,
        when: Collection[str],
        event: AuditEvent,
        *,
        owner: str | None = None,
        then: Callable[[Connection], None] | None = None,
        ended: bool = False,
        **values: Any,
    ) -> bool:
        """Set ``values`` on the job if it is in one of ``when`` (and leased by
        ``owner``), run ``then`` and record ``event``, all in one transaction; False
        (nothing done) if the job was not in one of ``when``. A job that ``ended`` has
        its files deleted and their key shredded after the commit (a job that did not
        end keeps them)."""
        with write_transaction(self.jobs.engine) as connection:
            if not self.jobs.change(connection, job.job_id, when, owner, **values):
                return False
            if then is not None:
                then(connection)
            self.ledger.writer.record([event], connection)
        if ended:
            self.files.delete(job.job_id, job.key_id)
        return True
