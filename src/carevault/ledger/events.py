"""Audit events: one per access decision at the gate, and per security event.

An event names the patient only by pseudonym, so erasing a patient never forces
rewriting the tree. Its canonical bytes (sorted-key compact JSON, UTF-8) are what
a ledger leaf commits to; the FHIR AuditEvent form is derived from it for export.

Reading is forward-compatible. Builds of two releases share one ledger during a
rolling upgrade (``carevault serve --workers N``), and an older binary may read a
restored backup, so an entry may hold what this build does not know: a field added
later (as ``request_id`` was), a tag or outcome added to the vocabulary, a higher
format version ``v``. Such an entry reads; what this build does not know is kept on
the event (``unknown``, ``format_version``, an ``Unrecognised`` tag or outcome), never
dropped silently and never guessed at. The ledger's integrity rests on the stored
bytes alone: verification, inclusion proofs, checkpoints, segments and every export's
leaf hash take the entry's bytes as stored, and nothing re-encodes an event it read
(``canonical`` refuses to, see there). An entry that is not an audit event at all (not
JSON, a required field missing, a field of the wrong type) is corruption, not the
future: ``MalformedEntry``, whose message quotes none of the entry.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

#: The format version this build writes (``v``). A new field or a new tag is not a new
#: version (readers keep what they do not know); a new version says known fields changed
#: meaning, so a reader of an older build marks what it renders from such an entry.
FORMAT_VERSION = 1


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
    #: A privacy officer took an identifier off a Patient (a desk's mistyped HKID): the
    #: system and the fixed reason, never the value (stop 63).
    PATIENT_IDENTIFIER_REMOVED = "fhir:patient:identifier-removed"
    #: A privacy officer ended a patient's registration at a clinic (one a stolen login
    #: made, one made in error), with the fixed reason (stop 63).
    PATIENT_UNREGISTERED = "fhir:patient:unregistered"
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
    ACCESS_BREAK_GLASS_SHOWN = "access:break-glass:shown"
    #: A grant whose row does not match its seal (inserted or edited in the database
    #: without the key): honoured nowhere (adversary round 70).
    ACCESS_BREAK_GLASS_ALTERED = "access:break-glass:altered"
    #: A registration whose row does not match its seal (inserted or edited in the
    #: database without the key): it places the patient nowhere (stop 57; before, the
    #: log said so on every read, and nothing else did).
    ACCESS_REGISTRATION_ALTERED = "access:registration:altered"
    #: A care relationship whose row does not match its seal: it opens nothing and
    #: explains nothing to the detectors (stop 57, as registrations).
    ACCESS_CARE_ALTERED = "access:care:altered"
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
    #: A mode kept on because its row was released, edited or deleted in the database
    #: without the key its rows are sealed with (adversary round 69).
    CONTAIN_ALTERED = "containment:state:altered"
    EMERGENCY_REQUESTED = "containment:emergency-access:requested"
    EMERGENCY_APPROVED = "containment:emergency-access:approved"
    KEY_ROTATION_STARTED = "keys:kek:rotation-started"
    KEY_ROTATED = "keys:kek:rotated"
    KEY_VERSION_DESTROYED = "keys:kek:destroyed"
    PATIENT_ERASED = "keys:data-key:shredded"
    PATIENT_ERASURE_SHOWN = "keys:erasure-reason:shown"
    AUDIT_VERIFIED = "audit:ledger:verified"
    #: A staff account whose row does not match its seal (role, clinics or practitioner
    #: edited in the database without the key): its sessions refused (round 69).
    ACCOUNT_ALTERED = "auth:account:altered"
    #: A session whose row does not match its seal (moved to another account,
    #: lengthened, un-revoked, cleared of its step-up in the database): refused (round 70).
    SESSION_ALTERED = "auth:session:altered"
    #: A client app whose row does not match its seal (clinics, scopes, secret, keys,
    #: bound account or revocation edited in the database): refused (round 70).
    CLIENT_ALTERED = "auth:client:altered"
    #: A register beside the keyring (the revocations': ``keys.revocations``) could not
    #: be written or read (review of round 70's helper, stop 57).
    REGISTER_FAILED = "keys:register:failed"
    #: A witness refused to cosign a checkpoint (adversary round 69): for a conflict or a
    #: failed consistency proof, the ledger was rolled back or rewritten under the server.
    AUDIT_WITNESS_REFUSED = "audit:witness:refused"
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
    INCIDENT_AMEND_REFUSED = "incident:incident:refused"
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
    #: One per patient whose records a downloaded export file holds: the release to
    #: whoever fetched it (a file may be fetched long after it was written).
    EXPORT_FILE_RELEASED = "bulk:export:file-released"
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
    #: A privacy officer started (or resumed) an incident's notices, with a fresh code
    NOTIFY_JOB_STARTED = "notify:job:started"
    NOTIFY_NOTICE_SENT = "notify:notice:sent"
    NOTIFY_NOTICE_SKIPPED = "notify:notice:skipped"
    NOTIFY_NOTICE_BOUNCED = "notify:notice:bounced"
    NOTIFY_CODE_CHECKED = "notify:code:checked"
    NOTIFY_RISK_DECIDED = "notify:risk:decided"
    NOTIFY_REPORT_MADE = "notify:report:made"
    #: A privacy officer had one patient's notice shown in full (``notify preview
    #: --patient``), with a fresh code: who read the name, address and exposure printed
    NOTIFY_PREVIEW_SHOWN = "notify:preview:shown"


class Outcome(StrEnum):
    SUCCESS = "success"
    DENIED = "denied"
    FAILED = "failed"


class Unrecognised(str):
    """A tag or outcome that this build's vocabulary does not hold, as the entry says it.

    A newer build added it (or an older one used a word since retired). It is kept as
    the raw string rather than mapped to the nearest known member, which would lie: it
    equals no ``Tag`` or ``Outcome`` member, and code that must map the vocabulary (the
    FHIR outcome code, the syslog severity) sees the difference in the type and says so
    instead of guessing. ``value`` gives the string, as it does for a member, so what
    only shows the word (CSV, search filters, the console) needs no change.
    """

    __slots__ = ()

    @property
    def value(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return f"Unrecognised({str.__repr__(self)})"


class MalformedEntry(ValueError):
    """A ledger entry that is not an audit event at all: corruption, not a newer build.

    The message names the entry's position (when the reader knows it), the field and
    what is wrong with it, never a value: an entry holds pseudonyms, addresses and free
    text that do not belong in logs or error pages.
    """


@dataclass(frozen=True)
class AuditEvent:
    tag: Tag | Unrecognised
    outcome: Outcome | Unrecognised
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
    #: The format version of the entry this event was read from (``v``); higher than
    #: ``FORMAT_VERSION`` if a newer build wrote it. Not part of the event's identity.
    format_version: int = field(default=FORMAT_VERSION, compare=False)
    #: The entry's top-level fields this build does not know, by name, as read: kept so
    #: that nothing the entry says is lost to whoever holds the event, but not part of
    #: its identity (equality) and never written by this build (``canonical``).
    unknown: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def fully_understood(self) -> bool:
        """This build knows everything the entry says: its version, fields and words."""
        return (
            self.format_version == FORMAT_VERSION
            and not self.unknown
            and not isinstance(self.tag, Unrecognised)
            and not isinstance(self.outcome, Unrecognised)
        )

    def canonical(self) -> bytes:
        """The bytes a ledger leaf commits to: stable across versions and machines.

        Only for an event this build makes. An event read from an entry this build does
        not fully understand is refused (``ValueError``) rather than re-encoded: leaving
        out its unknown fields, or stamping it with this build's version, would give
        bytes other than the stored ones, and writing what it does not know under this
        build's name would vouch for it. Nothing re-encodes an event it read; whoever
        needs an entry's bytes (to hash, prove or export) has them from the store.
        """
        if not self.fully_understood:
            raise ValueError(
                "an event read from an entry this build does not fully understand is not "
                "re-encoded: use the entry's stored bytes"
            )
        # The fields as they are (not dataclasses.asdict, which deep-copies every value:
        # a third of the time of a read's audit entry); the bytes are the same.
        document = {
            name: value
            for name in _FIELD_NAMES
            if (value := getattr(self, name)) not in (None, (), {}, "")
        }
        document["v"] = FORMAT_VERSION
        return json.dumps(
            document, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()

    @classmethod
    def from_canonical(cls, data: bytes, *, seq: int | None = None) -> AuditEvent:
        """The event a ledger entry's bytes record, forward-compatibly.

        What a newer build may add reads without error and is kept on the event: fields
        this build does not know go to ``unknown``; a tag or outcome it does not know is
        an ``Unrecognised`` string; a higher ``v`` is ``format_version``, and the fields
        this build knows are read as it knows them (whoever renders the event for
        others marks it, see ``ledger.export``). Raises ``MalformedEntry`` for bytes
        that are not an audit event: not a JSON object, ``tag``, ``outcome`` or
        ``at_us`` missing, a known field of the wrong type. ``seq`` only names the
        entry in that error.
        """
        try:
            document = json.loads(data)
        except ValueError:
            # JSONDecodeError and UnicodeDecodeError hold the entry: raised outside this
            # block, the error does not carry them along as its context.
            document = _NOT_JSON
        if document is _NOT_JSON:
            raise MalformedEntry(f"{_entry(seq)} is not JSON")
        if not isinstance(document, dict):
            raise MalformedEntry(f"{_entry(seq)} is not a JSON object")
        version = document.pop("v", FORMAT_VERSION)
        if type(version) is not int or version < 1:
            raise MalformedEntry(f"{_entry(seq)}: 'v' is not a format version")
        known: dict[str, Any] = {}
        unknown: dict[str, Any] = {}
        for name, value in document.items():
            read = _READERS.get(name)
            if read is None:
                unknown[name] = value
                continue
            try:
                known[name] = read(value)
            except _WrongType as wrong:
                raise MalformedEntry(
                    f"{_entry(seq)}: {name!r} is {_json_type(value)}, not {wrong}"
                ) from None
        missing = [name for name in _REQUIRED if name not in known]
        if missing:
            raise MalformedEntry(f"{_entry(seq)} has no {', '.join(map(repr, missing))}")
        return cls(**known, format_version=version, unknown=unknown)


#: What ``canonical`` writes: every field but what only a read event carries.
_FIELD_NAMES = tuple(
    item.name for item in fields(AuditEvent) if item.name not in ("format_version", "unknown")
)
_REQUIRED = ("tag", "outcome", "at_us")
_NOT_JSON = object()


class _WrongType(Exception):
    """A known field's value is not of its type; the message says what was expected."""


def _entry(seq: int | None) -> str:
    return "a ledger entry" if seq is None else f"ledger entry {seq}"


def _json_type(value: object) -> str:
    """The JSON type of a parsed value: what an error may say about it (never the value)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _word(vocabulary: type[Tag] | type[Outcome]) -> Callable[[object], Any]:
    """The reader of a word of ``vocabulary``: its member, or the word as written
    (``Unrecognised``) if this build's vocabulary does not hold it."""

    def read(value: object) -> Tag | Outcome | Unrecognised:
        if not isinstance(value, str):
            raise _WrongType("a string")
        try:
            return vocabulary(value)
        except ValueError:
            return Unrecognised(value)

    return read


def _integer(value: object) -> int:
    if type(value) is not int:
        raise _WrongType("an integer")
    return value


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise _WrongType("a string")
    return value


def _text_or_none(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise _WrongType("a string")
    return value


def _texts(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _WrongType("an array of strings")
    return tuple(value)


def _object(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _WrongType("an object")
    return value


_READERS: dict[str, Callable[[object], Any]] = {
    "tag": _word(Tag),
    "outcome": _word(Outcome),
    "at_us": _integer,
    "clinic_ids": _texts,
    "categories": _texts,
    "reason": _text,
    "detail": _object,
}
#: Every other field is text or absent. A new field of another type fails its own round
#: trip (``MalformedEntry``) until it is given its reader above.
_READERS.update({name: _text_or_none for name in _FIELD_NAMES if name not in _READERS})
