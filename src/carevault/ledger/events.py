"""Audit events: one per access decision at the gate, and per security event.

An event names the patient only by pseudonym, so erasing a patient never forces
rewriting the tree. Its canonical bytes (sorted-key compact JSON, UTF-8) are what
a ledger leaf commits to; the FHIR AuditEvent form is derived from it for export.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any


class Tag(StrEnum):
    """The ledger's action vocabulary, ``source:subject:action``."""

    FHIR_READ = "fhir:resource:read"
    FHIR_VREAD = "fhir:resource:vread"
    FHIR_SEARCH = "fhir:resource:search"
    FHIR_HISTORY = "fhir:resource:history"
    FHIR_EVERYTHING = "fhir:patient:everything"
    FHIR_CREATE = "fhir:resource:create"
    FHIR_UPDATE = "fhir:resource:update"
    FHIR_DELETE = "fhir:resource:delete"
    FHIR_EXPORT = "fhir:resource:export"
    FHIR_IMPORT = "fhir:bulk:imported"
    PATIENT_REGISTERED = "fhir:patient:registered"
    PATIENT_TRANSFERRED = "fhir:patient:transferred"
    AUDIT_READ = "audit:ledger:read"
    AUTH_SIGNED_IN = "auth:session:signed-in"
    AUTH_SIGN_IN_FAILED = "auth:session:sign-in-failed"
    AUTH_TOKEN_ISSUED = "auth:token:issued"
    AUTH_TOKEN_REFRESHED = "auth:token:refreshed"
    AUTH_TOKEN_REFUSED = "auth:token:refused"
    AUTH_REFRESH_REUSED = "auth:token:refresh-reused"
    AUTH_SESSION_REVOKED = "auth:session:revoked"
    AUTH_SIGN_IN_THROTTLED = "auth:session:sign-in-throttled"
    AUTH_RECOVERY_CODE_USED = "auth:recovery-code:used"
    AUTH_RATE_LIMITED = "auth:request:rate-limited"
    AUTH_STEPPED_UP = "auth:session:stepped-up"
    AUTH_HOST_REFUSED = "auth:request:host-refused"
    AUTH_PATIENT_CHOSEN = "auth:launch:patient-chosen"
    ACCESS_BREAK_GLASS = "access:break-glass:granted"
    ACCESS_BREAK_GLASS_REVIEWED = "access:break-glass:reviewed"
    ADMIN_STAFF_ADDED = "admin:staff:added"
    ADMIN_STAFF_SUSPENDED = "admin:staff:suspended"
    ADMIN_STAFF_REINSTATED = "admin:staff:reinstated"
    ADMIN_PASSWORD_CHANGED = "admin:staff:password-changed"
    ADMIN_TOTP_RESET = "admin:staff:totp-reset"
    ADMIN_RECOVERY_CODES_ISSUED = "admin:staff:recovery-codes-issued"
    ADMIN_THROTTLE_CLEARED = "admin:staff:sign-in-throttle-cleared"
    ADMIN_CLIENT_ADDED = "admin:client:added"
    ADMIN_CLIENT_REVOKED = "admin:client:revoked"
    ADMIN_SEED = "admin:data:seeded"
    ADMIN_BACKUP_TAKEN = "admin:data:backed-up"
    ADMIN_RESTORED = "admin:data:restored"
    REQUEST_REFUSED = "web:request:refused"
    ADMIN_INDEX_REBUILT = "admin:index:rebuilt"
    KEY_UNWRAP = "keys:data-key:unwrapped"
    CONTAIN_STARTED = "containment:mode:started"
    CONTAIN_RELEASED = "containment:mode:released"
    CONTAIN_REFUSED = "containment:mode:refused"
    CONTAIN_BLOCKED = "containment:address:blocked"
    EMERGENCY_REQUESTED = "containment:emergency-access:requested"
    EMERGENCY_APPROVED = "containment:emergency-access:approved"
    KEY_ROTATION_STARTED = "keys:kek:rotation-started"
    KEY_ROTATED = "keys:kek:rotated"
    KEY_VERSION_DESTROYED = "keys:kek:destroyed"
    PATIENT_ERASED = "keys:data-key:shredded"
    AUDIT_VERIFIED = "audit:ledger:verified"
    ADMIN_SESSION_ENDED = "admin:session:ended"
    CONSOLE_SESSION_OPENED = "console:session:opened"
    CONSOLE_SESSION_ENDED = "console:session:ended"
    CONSOLE_SIGN_IN_REFUSED = "console:session:refused"
    CONSOLE_STEP_UP_REFUSED = "console:step-up:refused"
    CONSOLE_REQUEST_REFUSED = "console:request:refused"
    DETECT_ALERT_RAISED = "detect:alert:raised"
    DETECT_ALERT_HANDLED = "detect:alert:handled"
    DETECT_FAILED = "detect:detector:failed"
    DETECT_STEP_UP = "detect:session:step-up"
    DETECT_THROTTLED = "detect:account:throttled"
    DETECT_FLAG_SET = "detect:patient:flagged"
    DETECT_STAFF_IDENTIFIED = "detect:staff:identified"
    INCIDENT_DECLARED = "incident:incident:declared"
    INCIDENT_AMENDED = "incident:incident:amended"
    INCIDENT_SCOPED = "incident:scope:computed"
    SEGMENT_SEALED = "audit:segment:sealed"
    # Bulk Data export (carevault.export); each exported patient is a FHIR_EXPORT entry
    EXPORT_REQUESTED = "bulk:export:requested"
    EXPORT_REFUSED = "bulk:export:refused"
    EXPORT_APPROVED = "bulk:export:approved"
    EXPORT_DENIED = "bulk:export:denied"
    EXPORT_STARTED = "bulk:export:started"
    EXPORT_FILE_WRITTEN = "bulk:export:file-written"
    EXPORT_COMPLETED = "bulk:export:completed"
    EXPORT_CANCELLED = "bulk:export:cancelled"
    EXPORT_EXPIRED = "bulk:export:expired"
    EXPORT_STOPPED = "bulk:export:stopped"
    EXPORT_DOWNLOADED = "bulk:export:downloaded"
    # ``$import`` by an integration client (carevault.importjobs); each record it writes
    # is a fhir:resource:create/update entry of the client, as any write
    IMPORT_REQUESTED = "bulk:import:requested"
    IMPORT_REFUSED = "bulk:import:refused"
    IMPORT_STARTED = "bulk:import:started"
    IMPORT_COMPLETED = "bulk:import:completed"
    IMPORT_CANCELLED = "bulk:import:cancelled"
    IMPORT_STOPPED = "bulk:import:stopped"
    IMPORT_EXPIRED = "bulk:import:expired"
    # Breach notification (carevault.notify)
    NOTIFY_JOB_RUN = "notify:job:run"
    NOTIFY_NOTICE_SENT = "notify:notice:sent"
    NOTIFY_NOTICE_SKIPPED = "notify:notice:skipped"
    NOTIFY_NOTICE_BOUNCED = "notify:notice:bounced"
    NOTIFY_CODE_CHECKED = "notify:code:checked"
    NOTIFY_RISK_DECIDED = "notify:risk:decided"
    NOTIFY_REPORT_MADE = "notify:report:made"


class Outcome(StrEnum):
    SUCCESS = "success"
    DENIED = "denied"
    FAILED = "failed"


@dataclass(frozen=True)
class AuditEvent:
    tag: Tag
    outcome: Outcome
    at_us: int
    principal: str | None = None
    role: str | None = None
    clinic_ids: tuple[str, ...] = ()
    client_id: str | None = None
    session_id: str | None = None
    source_address: str | None = None
    user_agent: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    patient_pseudonym: str | None = None
    categories: tuple[str, ...] = ()
    purpose: str | None = None
    break_glass_reason: str | None = None
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    #: The call through the gate that wrote the entry (``gate.core._Attempt``): the same
    #: for every entry of one request, different for any two requests. Entries written
    #: before it was kept have none.
    request_id: str | None = None

    def canonical(self) -> bytes:
        """The bytes a ledger leaf commits to: stable across versions and machines."""
        # The fields as they are (not dataclasses.asdict, which deep-copies every value:
        # a third of the time of a read's audit entry); the bytes are the same.
        document = {
            name: value
            for name in _FIELD_NAMES
            if (value := getattr(self, name)) not in (None, (), {}, "")
        }
        document["v"] = 1
        return json.dumps(
            document, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()

    @classmethod
    def from_canonical(cls, data: bytes) -> AuditEvent:
        document = json.loads(data)
        document.pop("v", None)
        for key in ("clinic_ids", "categories"):
            if key in document:
                document[key] = tuple(document[key])
        document["tag"] = Tag(document["tag"])
        document["outcome"] = Outcome(document["outcome"])
        return cls(**document)


_FIELD_NAMES = tuple(item.name for item in fields(AuditEvent))
