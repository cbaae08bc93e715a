"""Bulk Data export (FHIR Bulk Data Access v2, the ``$export`` operation): the kick-off's
parameters, the job as stored, and the manifest. Plain types and rules, no I/O."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from carevault.access.scopes import Interaction, Scopes
from carevault.domain.jobs import JobNotFound, JobRefused
from carevault.fhir import dates
from carevault.fhir.elements import FHIR_ID
from carevault.fhir.parameters import Part
from carevault.fhir.registry import RESOURCE_TYPES


class Level(StrEnum):
    SYSTEM = "system"
    PATIENT = "patient"
    GROUP = "group"


class Status(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DENIED = "denied"
    EXPIRED = "expired"


#: Jobs the worker may still act on.
LIVE = frozenset({Status.PENDING, Status.APPROVED, Status.RUNNING, Status.COMPLETED})
#: A job on an officer's desk or in the worker's hands: a client has at most one.
IN_PROGRESS = frozenset({Status.PENDING, Status.APPROVED, Status.RUNNING})
#: ``_outputFormat`` values meaning NDJSON (the spec's abbreviations included), and the
#: spec's own spelling sent unescaped in a query string, where its ``+`` reads as a space
#: (adversary round 48: refused "only application/fhir+ndjson is offered").
NDJSON_FORMATS = frozenset(
    {"application/fhir+ndjson", "application/fhir ndjson", "application/ndjson", "ndjson"}
)
#: Parameters of the spec this server does not implement: refused, never ignored (an
#: export that silently ignored ``_typeFilter`` would hand out more than was asked).
UNSUPPORTED = frozenset(
    {"_typeFilter", "_elements", "includeAssociatedData", "_until", "organizeOutputBy"}
)
#: At most this many ``patient`` parameters in one kick-off: a list is kept with its job,
#: shown to the officers who approve it and matched in one query; a client wanting more
#: patients asks in several exports (one at a time), or for all it may reach.
MAX_PATIENTS = 1000
#: A ``patient`` reference: ``Patient/[id]``, the id as FHIR (and every read here) takes it.
_PATIENT_REFERENCE = re.compile(rf"Patient/({FHIR_ID.pattern})")
NDJSON = "application/fhir+ndjson"
#: The manifest's ``type`` of a file of the ``deleted`` array (Bulk Data v2: NDJSON of
#: transaction Bundles), and the type its ``export_file`` row is filed under. Bundle is
#: never an output type here (it is no type of the registry, so no ``_type`` names it,
#: a test holds it so), so the row's type tells the two kinds of file apart.
DELETED_TYPE = "Bundle"
#: The ``value[x]`` each parameter this server applies may come as in a POST kick-off's
#: Parameters body: the Bulk Data v2 kick-off table's type, and the others whose JSON is
#: the same text the query string gives (a code is a string; ``_since`` in a dateTime or
#: a string is refused unless it is a full instant, as in the query). Each value is then
#: read exactly as the same parameter in the query string is (``parse_request``).
BODY_VALUE_TYPES: dict[str, frozenset[str]] = {
    "_outputFormat": frozenset({"valueString", "valueCode"}),
    "_type": frozenset({"valueString", "valueCode"}),
    "_since": frozenset({"valueInstant", "valueDateTime", "valueString"}),
}


class ExportRefused(JobRefused):
    """The kick-off is refused: 403 (not granted), 400 (bad parameters), 404 (no such
    Group), 429 (the client's previous export is still in progress), 503 (contained)."""


class ExportNotFound(JobNotFound):
    """No such job for this caller (or its files are gone): 404."""


@dataclass(frozen=True)
class Request:
    """What a kick-off asks for, checked."""

    level: Level
    group_id: str | None
    types: tuple[str, ...]
    since_us: int | None
    #: The ids the client named with ``patient`` (in the order sent): the export is
    #: narrowed to them. Empty: no ``patient`` parameter, every patient in reach.
    patients: tuple[str, ...] = ()


def may_export(scopes: Scopes | None, principal: str) -> bool:
    """Only a backend service (client credentials) granted ``system/*.read`` (reading and
    searching every type) may ask for an export; a staff member's token never may."""
    if scopes is None or not principal.startswith("client:"):
        return False
    wanted = {Interaction.READ, Interaction.SEARCH}
    return any(
        grant.context == "system" and grant.resource_type == "*" and wanted <= grant.interactions
        for grant in scopes.grants
    )


def parse_request(
    level: Level,
    group_id: str | None,
    params: Sequence[tuple[str, str]],
    patients: Sequence[str] = (),
) -> Request:
    """The kick-off's parameters; ExportRefused(400) names the first that is wrong.
    ``params`` are the query string's and a POST body's text parameters; ``patients``
    the ids of a POST body's ``patient`` references (``body_patients``)."""
    types: list[str] = []
    since_us: int | None = None
    if patients and level is Level.SYSTEM:
        raise ExportRefused(
            400,
            "patient: not applicable to a system-level export"
            " (ask Patient/$export or Group/[id]/$export)",
        )
    for name, value in params:
        if name in UNSUPPORTED:
            raise _unsupported(name)
        if name == "patient":
            # Bulk Data v2: "POST requests only", as a Parameters valueReference.
            raise ExportRefused(
                400,
                "patient: give it in a POST's Parameters body, as a valueReference"
                " to Patient/[id], not in the query string",
            )
        if name == "_outputFormat":
            if value not in NDJSON_FORMATS:
                raise quoting(
                    400,
                    "_outputFormat: {} is not offered (ask for application/fhir+ndjson)",
                    value,
                )
        elif name == "_type":
            for item in value.split(","):
                item = item.strip()
                if item not in RESOURCE_TYPES:
                    raise quoting(400, "_type: no resource type {} here", item)
                if level is not Level.SYSTEM and not RESOURCE_TYPES[item].is_patient_data:
                    raise ExportRefused(
                        400, f"_type: {item} is not patient data (ask a system-level export)"
                    )
                if item not in types:
                    types.append(item)
        elif name == "_since":
            # Two would be one filter applied and one ignored: which the client meant
            # is not for the server to guess.
            if since_us is not None:
                raise ExportRefused(400, "_since: give it once")
            since_us = parse_instant(value)
        else:
            raise _unknown(name)
    return Request(level, group_id, tuple(types), since_us, tuple(patients))


def body_params(body: Sequence[Part]) -> list[tuple[str, str]]:
    """A POST kick-off's Parameters body as the query string's ``(name, text)`` pairs,
    repeats kept (``parse_request`` merges repeated ``_type``); ExportRefused(400) names
    the first part this server would not apply: one the query string refuses too, one
    with no value, or a value of a type the parameter does not take."""
    params: list[tuple[str, str]] = []
    for part in body:
        if part.name in UNSUPPORTED:
            raise _unsupported(part.name)
        if part.name == "patient":
            continue  # ``body_patients`` reads these
        accepted = BODY_VALUE_TYPES.get(part.name)
        if accepted is None:
            raise _unknown(part.name)
        if part.value_type is None:
            raise ExportRefused(400, f"{part.name}: the parameter has no value")
        if part.value_type not in accepted:
            raise ExportRefused(
                400,
                f"{part.name}: a {_quoted(part.value_type)} is not accepted"
                f" (give {' or '.join(sorted(accepted))})",
            )
        if not isinstance(part.value, str):
            raise ExportRefused(400, f"{part.name}: its {part.value_type} is not a string")
        params.append((part.name, part.value))
    return params


def body_patients(body: Sequence[Part]) -> tuple[str, ...]:
    """The ids of a POST kick-off's ``patient`` parts (Bulk Data v2: each a
    ``valueReference`` to ``Patient/[id]``), in the order sent; ExportRefused(400) names
    the first that is not one, one given twice, or a list longer than ``MAX_PATIENTS``.
    Whether each is a patient the export may reach is the service's to judge."""
    ids: list[str] = []
    for part in body:
        if part.name != "patient":
            continue
        if part.value_type is None:
            raise ExportRefused(400, "patient: the parameter has no value")
        if part.value_type != "valueReference":
            raise ExportRefused(
                400, f"patient: a {_quoted(part.value_type)} is not accepted (give valueReference)"
            )
        patient_id = _patient_id(part.value)
        if patient_id in ids:
            raise ExportRefused(400, f"patient: Patient/{patient_id} is given twice")
        ids.append(patient_id)
        if len(ids) > MAX_PATIENTS:
            raise ExportRefused(
                400,
                f"patient: at most {MAX_PATIENTS} patients in one export"
                " (ask for the others in another)",
            )
    return tuple(ids)


def _patient_id(reference: Any) -> str:
    """The id of a ``valueReference`` to ``Patient/[id]``; ExportRefused(400) for any
    other (an absolute URL, another type, an identifier or a display alone)."""
    text = reference.get("reference") if isinstance(reference, dict) else None
    if not isinstance(text, str):
        raise ExportRefused(400, "patient: a valueReference with a reference to Patient/[id]")
    found = _PATIENT_REFERENCE.fullmatch(text)
    if found is None or reference.get("type", "Patient") != "Patient":
        raise quoting(400, "patient: {} is not a reference to Patient/[id]", text)
    return found.group(1)


def _unsupported(name: str) -> ExportRefused:
    return ExportRefused(400, f"{name} is not supported by this server")


def _unknown(name: str) -> ExportRefused:
    return quoting(400, "unknown parameter {}", name)


def quoting(status: int, message: str, sent: str) -> ExportRefused:
    """A refusal whose ``message`` quotes ``sent`` (at ``{}``) back to the client; the
    audit ledger's entry says only that something was sent there (``JobRefused.logged``)."""
    return ExportRefused(
        status, message.format(f"'{_quoted(sent)}'"), logged=message.format("(what was sent)")
    )


def _quoted(name: str) -> str:
    """A name the client sent, fit to quote back: printable, and short."""
    return "".join(c if c.isprintable() else "?" for c in name[:60])


def parse_instant(value: str) -> int:
    """A FHIR instant (with its time zone) as microseconds since the epoch."""
    from carevault.incidents.model import IncidentError, instant_in

    # An offset's ``+`` a query string read as a space (integrator round 60).
    value = dates.from_query(value)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ExportRefused(400, "_since: not a FHIR instant") from None
    if moment.tzinfo is None or "T" not in value:
        raise ExportRefused(400, "_since: give a full instant with its time zone")
    # Read as every other time a person gives (its zone is given: UTC is never used).
    try:
        return instant_in(value, UTC, "_since")
    except IncidentError:
        raise ExportRefused(400, "_since: not a FHIR instant") from None


def instant(at_us: int) -> str:
    return datetime.fromtimestamp(at_us / 1_000_000, UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Approval:
    officer: str
    at_us: int
    #: The officer's signed-in session the approval came from (None: the CLI on the host).
    session_id: str | None = None


@dataclass(frozen=True)
class Job:
    job_id: str
    level: Level
    group_id: str | None
    client_id: str
    principal: str
    status: Status
    types: tuple[str, ...]
    since_us: int | None
    request_url: str
    approvals_needed: int
    approvals: tuple[Approval, ...]
    requested_us: int
    transaction_us: int | None
    finished_us: int | None
    expires_us: int | None
    batches_done: int
    cursor_row: int
    patients_total: int
    patients_done: int
    resources_done: int
    key_id: str
    error: str | None
    #: The session the client kicked the job off with: whose standing the job keeps.
    session_id: str | None = None
    #: The ``patient`` ids the export is narrowed to (empty: every patient in reach).
    patients: tuple[str, ...] = ()

    def progress(self, held: str | None) -> str:
        """The X-Progress text: what the job waits for, or how far it got."""
        if self.status is Status.PENDING:
            return (
                f"awaiting privacy officer approval ({len(self.approvals)} of "
                f"{self.approvals_needed})"
            )
        if held is not None and self.status is Status.COMPLETED:
            # Why, as the download's 503 says it: which containment holds the files.
            return f"held: complete, its files wait while containment is active: {held}"
        if held is not None:
            return "held: containment is active"
        if self.status is Status.APPROVED:
            return "approved, queued"
        return f"{self.patients_done} of {self.patients_total} patients exported"


def job_from_row(m: Any) -> Job:
    return Job(
        job_id=m["job_id"],
        level=Level(m["level"]),
        group_id=m["group_id"],
        client_id=m["client_id"],
        principal=m["principal"],
        status=Status(m["status"]),
        types=tuple(filter(None, m["types"].split(","))),
        since_us=m["since_us"],
        request_url=m["request_url"],
        approvals_needed=m["approvals_needed"],
        approvals=tuple(
            Approval(a["officer"], a["at_us"], a.get("session")) for a in json.loads(m["approvals"])
        ),
        requested_us=m["requested_us"],
        transaction_us=m["transaction_us"],
        finished_us=m["finished_us"],
        expires_us=m["expires_us"],
        batches_done=m["batches_done"],
        cursor_row=m["cursor_row"],
        patients_total=m["patients_total"],
        patients_done=m["patients_done"],
        resources_done=m["resources_done"],
        key_id=m["key_id"],
        error=m["error"],
        session_id=m["session_id"],
        patients=tuple(json.loads(m["patients"])) if m["patients"] else (),
    )


@dataclass(frozen=True)
class OutputFile:
    batch: int
    resource_type: str
    name: str
    count: int
    size: int


def deletion_bundle(resource_type: str, resource_id: str, deleted_us: int) -> dict[str, Any]:
    """One line of a ``deleted`` file: a transaction Bundle whose one entry deletes the
    record (Bulk Data v2: ``request.method`` DELETE, ``request.url`` [type]/[id]), its
    ``meta.lastUpdated`` when the record was deleted. One Bundle per record, so that
    the manifest's ``count`` is the number of records deleted."""
    return {
        "resourceType": "Bundle",
        "meta": {"lastUpdated": instant(deleted_us)},
        "type": "transaction",
        "entry": [{"request": {"method": "DELETE", "url": f"{resource_type}/{resource_id}"}}],
    }


def deleted_ndjson(deletions: Iterable[tuple[str, str, int]]) -> bytes:
    """A file of the manifest's ``deleted``: one ``deletion_bundle`` a line, for each
    (resource type, id, when deleted)."""
    return b"".join(
        json.dumps(deletion_bundle(*deletion), separators=(",", ":")).encode() + b"\n"
        for deletion in deletions
    )


def manifest(job: Job, files: Sequence[OutputFile], file_url: str) -> dict[str, Any]:
    """The completed job's manifest (Bulk Data v2 "Response - Complete Status").
    ``file_url`` is the base the file names are appended to. ``deleted`` lists the files
    of deletions (empty without ``_since``: the worker writes none then)."""
    assert job.transaction_us is not None  # noqa: S101 - a completed job has started

    def listed(item: OutputFile) -> dict[str, Any]:
        return {"type": item.resource_type, "url": f"{file_url}/{item.name}", "count": item.count}

    return {
        "transactionTime": instant(job.transaction_us),
        "request": job.request_url,
        "requiresAccessToken": True,
        "output": [listed(item) for item in files if item.resource_type != DELETED_TYPE],
        "deleted": [listed(item) for item in files if item.resource_type == DELETED_TYPE],
        "error": [],
    }


def as_dict(job: Job) -> dict[str, Any]:
    """The agreed shape (``carevault export list --json``, ``GET /admin/exports``)."""
    return {
        "id": job.job_id,
        "level": str(job.level),
        "group": job.group_id,
        "client": job.client_id,
        "status": str(job.status),
        "types": list(job.types),
        "since": instant(job.since_us) if job.since_us is not None else None,
        # The narrowing an officer approves: the ids named (None: every patient in reach).
        "patients": list(job.patients) if job.patients else None,
        "request": job.request_url,
        "approvals_needed": job.approvals_needed,
        "approvals": [{"officer": a.officer, "at": instant(a.at_us)} for a in job.approvals],
        "requested": instant(job.requested_us),
        "transaction_time": instant(job.transaction_us) if job.transaction_us else None,
        "finished": instant(job.finished_us) if job.finished_us else None,
        "expires": instant(job.expires_us) if job.expires_us else None,
        "patients_total": job.patients_total,
        "patients_done": job.patients_done,
        "resources_done": job.resources_done,
        "error": job.error,
    }
