"""Ledger entries in the forms others read: FHIR R4 AuditEvent, RFC 5424 syslog, CSV.

Every form carries the entry's position in the ledger (``seq``) and its leaf hash,
so whoever receives an export can ask for, and check, the entry's inclusion proof.

An entry a newer build wrote is exported too (a rolling upgrade, a restored backup), by
what this build knows of it, and each form says what that leaves out rather than
passing it off as complete: a higher format version (whose known fields may mean more
than this build reads into them) and the names of fields this build does not know. A
tag this build does not know is exported as written; an outcome it does not know has
no FHIR outcome code (the element is left out, as R4 allows) and the syslog severity
of a warning, so that it is looked at rather than filed as routine.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from carevault.ledger.events import FORMAT_VERSION, AuditEvent, Outcome
from carevault.ledger.verifier import leaf_hash

EXPORT_FORMATS = ("fhir-ndjson", "syslog", "csv")
LEDGER_SYSTEM = "urn:carevault:audit-ledger"
PSEUDONYM_SYSTEM = "urn:carevault:patient-pseudonym"
PRINCIPAL_SYSTEM = "urn:carevault:principal"

_ACTIONS = {
    "read": "R",
    "vread": "R",
    "search": "E",
    "history": "R",
    "everything": "E",
    "export": "E",
    "create": "C",
    "update": "U",
    "delete": "D",
}
_OUTCOMES = {Outcome.SUCCESS: "0", Outcome.DENIED: "4", Outcome.FAILED: "8"}
_SEVERITIES = {Outcome.SUCCESS: 6, Outcome.DENIED: 4, Outcome.FAILED: 3}
#: The syslog severity of an outcome this build does not know: warning, as a denial.
_UNKNOWN_SEVERITY = 4
_REST = {"read", "vread", "search", "history", "create", "update", "delete"}


def _instant(at_us: int) -> str:
    moment = datetime.fromtimestamp(at_us / 1_000_000, tz=UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


AUDIT_EVENT_TYPES = "http://terminology.hl7.org/CodeSystem/audit-event-type"


def event_type(tag: str) -> tuple[str, str]:
    """(system, code) of the AuditEvent.type of an entry with ``tag``: ``rest`` for the
    FHIR RESTful interactions, else the tag's source (``auth:session``) under the
    ledger's system. The AuditEvent search's ``type`` matches this very coding."""
    source, _, verb = tag.rpartition(":")
    if source.startswith("fhir") and verb in _REST:
        return AUDIT_EVENT_TYPES, "rest"
    return LEDGER_SYSTEM, source


def event_subtype(tag: str) -> tuple[str, str]:
    """(system, code) of the AuditEvent.subtype: the tag itself (``fhir:patient:read``)."""
    return LEDGER_SYSTEM, tag


def fhir_audit_event(seq: int, data: bytes) -> dict[str, Any]:
    """The FHIR R4 AuditEvent for ledger entry ``seq`` with canonical bytes ``data``."""
    event = AuditEvent.from_canonical(data, seq=seq)
    verb = event.tag.value.rpartition(":")[2]
    type_system, type_code = event_type(event.tag.value)
    subtype_system, subtype_code = event_subtype(event.tag.value)
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": f"audit-{seq}",
        "type": (
            {"system": type_system, "code": type_code, "display": "RESTful Operation"}
            if type_system == AUDIT_EVENT_TYPES
            else {"system": type_system, "code": type_code, "display": type_code}
        ),
        "subtype": [{"system": subtype_system, "code": subtype_code}],
        "recorded": _instant(event.at_us),
        **_outcome_code(event),
        "agent": [_agent(event)],
        "source": {
            "observer": {"display": "CareVault gate"},
            "type": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                    "code": "4",
                    "display": "Application Server",
                }
            ],
        },
    }
    action = _ACTIONS.get(verb)
    if action:
        resource["action"] = action
    if event.reason:
        resource["outcomeDesc"] = event.reason
    if event.purpose:
        resource["purposeOfEvent"] = [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                        "code": event.purpose,
                    }
                ]
            }
        ]
    entities = _entities(seq, data, event)
    if entities:
        resource["entity"] = entities
    return resource


def _outcome_code(event: AuditEvent) -> dict[str, str]:
    """The FHIR outcome element; none for an outcome this build does not know, which no
    code would state truly (the entry's own word is in its canonical bytes)."""
    if isinstance(event.outcome, Outcome):
        return {"outcome": _OUTCOMES[event.outcome]}
    return {}


def _unread(event: AuditEvent) -> tuple[str, str]:
    """What this build could not read of the entry: the format version if newer than it
    writes (else ""), and the unknown fields' names, sorted and comma-separated."""
    version = str(event.format_version) if event.format_version != FORMAT_VERSION else ""
    return version, ",".join(sorted(event.unknown))


def _agent(event: AuditEvent) -> dict[str, Any]:
    agent: dict[str, Any] = {
        "who": {"identifier": {"system": PRINCIPAL_SYSTEM, "value": event.principal or "unknown"}},
        "requestor": True,
    }
    if event.role:
        agent["role"] = [{"text": event.role}]
    if event.client_id:
        agent["altId"] = event.client_id
    if event.source_address:
        agent["network"] = {"address": event.source_address, "type": "2"}
    if event.clinic_ids:
        agent["location"] = {"display": ", ".join(event.clinic_ids)}
    if event.break_glass_reason:
        agent["purposeOfUse"] = [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                        "code": "ETREAT",
                    }
                ],
                "text": event.break_glass_reason,
            }
        ]
    return agent


#: IHE Basic Audit Log Patterns' entity types (``XrequestId``: the X-Request-ID).
BALP_ENTITY_TYPES = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"


def _entities(seq: int, data: bytes, event: AuditEvent) -> list[dict[str, Any]]:
    entities: list[dict[str, Any]] = []
    if event.resource_type and event.resource_id:
        entity: dict[str, Any] = {
            "what": {"reference": f"{event.resource_type}/{event.resource_id}"}
        }
        if event.categories:
            entity["detail"] = [{"type": "categories", "valueString": ",".join(event.categories)}]
        entities.append(entity)
    if event.patient_pseudonym:
        entities.append(
            {
                "what": {
                    "identifier": {"system": PSEUDONYM_SYSTEM, "value": event.patient_pseudonym}
                },
                "type": {
                    "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                    "code": "1",
                    "display": "Person",
                },
            }
        )
    if event.request_id:
        # IHE BALP's "transaction" entity: the request's X-Request-ID.
        entities.append(
            {
                "what": {"identifier": {"value": event.request_id}},
                "type": {"system": BALP_ENTITY_TYPES, "code": "XrequestId"},
            }
        )
    details: list[dict[str, str]] = [
        {"type": "leaf-hash", "valueString": leaf_hash(data).hex()},
        {"type": "canonical-entry", "valueBase64Binary": base64.b64encode(data).decode()},
    ]
    version, unknown = _unread(event)
    if version:
        details.append({"type": "format-version", "valueString": version})
    if unknown:
        details.append({"type": "unknown-fields", "valueString": unknown})
    entities.append(
        {"what": {"identifier": {"system": LEDGER_SYSTEM, "value": str(seq)}}, "detail": details}
    )
    return entities


def syslog_line(seq: int, data: bytes, hostname: str = "-", app: str = "carevault") -> str:
    """RFC 5424: <PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG (facility authpriv)."""
    event = AuditEvent.from_canonical(data, seq=seq)
    severity = (
        _SEVERITIES[event.outcome] if isinstance(event.outcome, Outcome) else _UNKNOWN_SEVERITY
    )
    version, unknown = _unread(event)
    priority = 10 * 8 + severity  # facility 10: security/authorization (authpriv)
    params = {
        "seq": str(seq),
        "leaf": leaf_hash(data).hex(),
        "tag": event.tag.value,
        "outcome": event.outcome.value,
        "principal": event.principal or "",
        "role": event.role or "",
        "src": event.source_address or "",
        "resource": f"{event.resource_type}/{event.resource_id}" if event.resource_id else "",
        "patient": event.patient_pseudonym or "",
        "categories": ",".join(event.categories),
        "request": event.request_id or "",
        "format": version,
        "unknown": unknown,
    }
    structured = "[carevault@32473 " + " ".join(
        f'{name}="{_sd_escape(value)}"' for name, value in params.items() if value
    )
    structured += "]"
    message = event.reason or event.tag.value
    msgid = event.tag.value.split(":")[-1][:32]
    return (
        f"<{priority}>1 {_instant(event.at_us)} {hostname} {app} - {msgid} {structured} "
        f"\ufeff{message}"
    )


def _sd_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


CSV_COLUMNS = (
    "seq",
    "recorded",
    "tag",
    "outcome",
    "principal",
    "role",
    "clinics",
    "client_id",
    "source_address",
    "resource",
    "patient_pseudonym",
    "categories",
    "purpose",
    "break_glass_reason",
    "reason",
    "leaf_hash",
    # Last, so that scripts reading the columns by position before they were added still do.
    "request_id",
    # What this build could not read of the entry (see ``_unread``): empty for one in its
    # own format with no field it does not know (an unknown tag or outcome is in its column).
    "format_version",
    "unknown_fields",
)


def csv_row(seq: int, data: bytes) -> list[str]:
    event = AuditEvent.from_canonical(data, seq=seq)
    return [
        str(seq),
        _instant(event.at_us),
        event.tag.value,
        event.outcome.value,
        event.principal or "",
        event.role or "",
        " ".join(event.clinic_ids),
        event.client_id or "",
        event.source_address or "",
        f"{event.resource_type}/{event.resource_id}" if event.resource_id else "",
        event.patient_pseudonym or "",
        " ".join(event.categories),
        event.purpose or "",
        event.break_glass_reason or "",
        event.reason,
        leaf_hash(data).hex(),
        event.request_id or "",
        *_unread(event),
    ]


def export_lines(entries: Iterable[tuple[int, bytes]], form: str) -> Iterator[str]:
    """Each entry as one line of the chosen format (CSV with a header line)."""
    if form == "fhir-ndjson":
        for seq, data in entries:
            yield json.dumps(fhir_audit_event(seq, data), ensure_ascii=False, separators=(",", ":"))
    elif form == "syslog":
        for seq, data in entries:
            yield syslog_line(seq, data)
    elif form == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="")
        writer.writerow(CSV_COLUMNS)
        yield buffer.getvalue()
        for seq, data in entries:
            buffer.seek(0)
            buffer.truncate()
            writer.writerow(csv_row(seq, data))
            yield buffer.getvalue()
    else:
        raise ValueError(f"unknown export format {form!r}; choose one of {EXPORT_FORMATS}")
