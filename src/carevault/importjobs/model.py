"""``$import`` jobs: the job as stored, who may kick one off. Plain types, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from carevault.access.scopes import Interaction, Scopes
from carevault.domain.jobs import JobNotFound, JobRefused
from carevault.fhir.outcome import Issue
from carevault.fhir.registry import RESOURCE_TYPES

#: The media types an ``$import`` body may be sent as.
NDJSON_TYPES = frozenset({"application/fhir+ndjson", "application/ndjson"})
#: The name of a job's one sealed file.
BODY = "body.ndjson"


#: A reason that starts with the element it is about (``Observation.subject: ...``): a
#: resource type, then element names (an index allowed), then a colon.
_ELEMENT_FIRST = re.compile(r"([A-Z][A-Za-z]*(?:\.[a-z][A-Za-z0-9]*(?:\[\d+\])?)+):")


def rejection(line: int, reason: str) -> Issue:
    """A refused line of the body as its status report's issue: the line first in the
    diagnostics and in FHIR's issue-line extension; the element the reason starts with,
    if it starts with one, as the issue's expression (a FHIRPath). ``line 3`` is no
    FHIRPath, and a client that reads expressions as such would fail on it."""
    element = _ELEMENT_FIRST.match(reason)
    path = element.group(1) if element is not None else None
    expression = (path,) if path is not None and path.split(".")[0] in RESOURCE_TYPES else ()
    return Issue("invalid", f"line {line}: {reason}", expression=expression, line=line)


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: Ended, and kept past the set time: its journal and refusals deleted.
    EXPIRED = "expired"


#: Jobs the worker may still act on; a client has at most one of them at a time.
WORKING = frozenset({Status.QUEUED, Status.RUNNING})
#: Ended jobs whose report (the journal's counts and refusals) is still kept.
ENDED = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})


class ImportRefused(JobRefused):
    """The kick-off is refused: 400, 403, 413, 415, 429 (the client's previous import
    is still queued or running) or 503 (contained)."""


class ImportNotFound(JobNotFound):
    """No such job for this caller (or its report has expired): 404."""


@dataclass(frozen=True)
class ImportJob:
    job_id: str
    client_id: str
    principal: str
    session_id: str | None
    status: Status
    digest: str
    lines_total: int
    size: int
    requested_us: int
    updated_us: int
    started_us: int | None
    finished_us: int | None
    key_id: str
    error: str | None
    lease_owner: str | None


def job_from_row(row: Any) -> ImportJob:
    return ImportJob(
        job_id=row["job_id"],
        client_id=row["client_id"],
        principal=row["principal"],
        session_id=row["session_id"],
        status=Status(row["status"]),
        digest=row["digest"],
        lines_total=row["lines_total"],
        size=row["size"],
        requested_us=row["requested_us"],
        updated_us=row["updated_us"],
        started_us=row["started_us"],
        finished_us=row["finished_us"],
        key_id=row["key_id"],
        error=row["error"],
        lease_owner=row["lease_owner"],
    )


def may_import(scopes: Scopes | None, principal: str) -> bool:
    """Only a backend service (client credentials) granted writes (``system/`` create
    or update of some type) may send an ``$import``; a staff member's token never may.
    Each record is still judged by the gate as that client's write."""
    if scopes is None or not principal.startswith("client:"):
        return False
    wanted = {Interaction.CREATE, Interaction.UPDATE}
    return any(grant.context == "system" and wanted & grant.interactions for grant in scopes.grants)


def count_lines(body: bytes) -> int:
    """The NDJSON lines of ``body`` (as ``bulk.sources`` numbers them)."""
    if not body:
        return 0
    return body.count(b"\n") + (0 if body.endswith(b"\n") else 1)
