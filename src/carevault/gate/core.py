"""The gate: the one path through which patient data is read and written.

Every read and write passes here, in a fixed order that each method shows:
check the token's scope → locate the record's clear metadata → decide (the
access policy) → open or write → keep only what the caller may see → record the
decision in the audit ledger → return. The ledger entry is durable before any
data leaves (fail closed); for writes it commits in the same transaction. The
vault's decrypting reads are imported here and nowhere else (import-linter).
"""

from __future__ import annotations

import contextvars
import re
import secrets
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import tzinfo
from typing import Any, NamedTuple, Protocol

from sqlalchemy import Connection

from carevault.access.breakglass import Grant
from carevault.access.care import CARE_TYPES, care_event, event_at
from carevault.access.control import AccessControl
from carevault.access.registrations import FailureCounter, Proof, TooManyAttempts, fisher
from carevault.access.scopes import Interaction, Scopes
from carevault.clock import to_micros
from carevault.containment.state import ContainmentActive, ContainmentState, ContainmentStore
from carevault.db import (
    WouldBlock,
    committed_reads,
    lock_until_commit,
    pinned_connection,
    settled_now,
)
from carevault.detect.budget import ReleaseRefused
from carevault.domain.care import (
    VOUCHED,
    CareWindow,
    Window,
    WriterStanding,
    grants,
    named_elsewhere,
)
from carevault.domain.categories import HEALTH_CATEGORIES, DataCategory
from carevault.domain.makers import attribute_marked
from carevault.domain.policy import (
    Actor,
    Decision,
    Target,
    claims_directory,
    decide,
    may_delete,
    may_move,
    may_place,
    outside_own_clinics,
    placed_elsewhere,
    writes_elsewhere,
)
from carevault.domain.roles import CLINIC_RECORD_WRITERS, CLINICIANS, GROUP_WIDE, RIGHTS, Right
from carevault.fhir import contained, jsonio
from carevault.fhir.care_dates import CarePeriod, has_care_date, within
from carevault.fhir.categories import (
    CODE_GUARDED_TYPES,
    changed_categories,
    element_categories,
    main_categories,
    main_category,
    own_categories,
    possible_categories,
)
from carevault.fhir.codes import has_sensitive_code
from carevault.fhir.derived import Derived
from carevault.fhir.elements import parse_reference, reference_targets, values_at
from carevault.fhir.government import is_government_system
from carevault.fhir.indexing import (
    hkid_terms,
    mrn_terms,
    param_terms,
    proof_terms,
    system_only_term,
)
from carevault.fhir.name_shape import name_shape
from carevault.fhir.query import SearchQuery, split_values
from carevault.fhir.registry import RESOURCE_TYPES, ResourceType
from carevault.fhir.subsetting import HiddenItemNamed, restore_withheld, subset, without_subsetted
from carevault.fhir.validate import InvalidResource
from carevault.gate.counted import (
    picks_out_people,
    picks_records,
    query_params,
    searched_categories,
    sensitive_code_param,
)
from carevault.gate.loading import patient_batch_events
from carevault.gate.paging import ChartPage, VersionPage, chart_cut, chart_place, cut
from carevault.gate.prefetch import NO_READS, Prefetched, prefetch_read
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.store import LedgerStore
from carevault.ledger.trail import AuditTrail, AuditUnavailable, Rider
from carevault.loop_reads import LoopBusy, LoopReads
from carevault.vault.opening import open_sealed
from carevault.vault.records import (
    Gone,
    Head,
    NotFound,
    Opened,
    RequestTooCostly,
    Sealed,
    WriteResult,
    not_known,
)
from carevault.vault.reindex import reindex
from carevault.vault.search import find, marked_ordinary
from carevault.vault.store import Restriction, Vault
from carevault.vault.writer import (
    Delete,
    Operation,
    Put,
    apply_writes,
    version_conflict,
    written_by_others,
)

_ALL = frozenset(DataCategory)
_NO_CONTAINMENT = ContainmentState()
#: Refusals of the reads a transaction Bundle runs inside its write (``Gate.write``'s
#: ``within``): their entries would roll back with the transaction, so they are held
#: here and recorded, with the write's own refusal, once it is gone.
_HELD_REFUSALS: contextvars.ContextVar[list[AuditEvent] | None] = contextvars.ContextVar(
    "held_refusals", default=None
)

#: What stays available while patient data is offline, so clinics can keep booking.
SCHEDULING_TYPES = frozenset(
    {
        "Appointment",
        "Schedule",
        "Slot",
        "Location",
        "Practitioner",
        "PractitionerRole",
        "Organization",
    }
)
OPEN_APPOINTMENT = ("proposed", "pending", "booked", "arrived", "checked-in", "waitlist")
PHI_OFFLINE = (
    "patient data is offline for security reasons; scheduling remains available. "
    "Ask the privacy officer for emergency access."
)
PHI_OFFLINE_NAME_ONLY = "patient data offline: name only, for a patient with an open booking"
KEY_LOCKDOWN = "key lockdown is on: no record can be decrypted for now"
CLINIC_LOCKED = "this clinic's patient data is locked for security reasons"


#: Where a directory record that names no clinic names the group's practitioners (whose
#: clinics then keep it, ``Gate._directory_target``): a Schedule's actors, a role's
#: practitioner, a Slot's Schedule.
_STAFF_PATHS: dict[str, tuple[str, ...]] = {
    "Schedule": ("actor",),
    "PractitionerRole": ("practitioner",),
    "Slot": ("schedule",),
}


#: Where a directory record placed at a clinic names practitioners as working there
#: (``Gate._refuse_placed_elsewhere``): those of ``_STAFF_PATHS`` that name them.
_PRACTITIONER_PATHS = {name: _STAFF_PATHS[name] for name in ("Schedule", "PractitionerRole")}


#: Why a read of a deletion is not answered on the event loop: its answer may open the
#: version the deletion ended (``Gate._deleted``), which may wait on a data key.
_DELETION_IN_WORKER = "a read of a deletion is answered in a worker thread"


class AccessDenied(Exception):
    """The policy refused (403); the reason names the rule, never the data."""


class ScopeDenied(AccessDenied):
    """The token's scopes do not allow the interaction (403, challenged with RFC 6750's
    ``insufficient_scope``): the app was not granted it, whatever the account may do."""


class UnseenMatch(AccessDenied):
    """A conditional create matched records the caller may not see (409): creating would
    split a patient's record in two, so it is refused, throttled and in the ledger.
    ``holder``: the pseudonym of the patient matched, whom the refusal tells of."""

    def __init__(self, message: str, holder: str | None = None) -> None:
        super().__init__(message)
        self.holder = holder


class ClinicRequired(Exception):
    """A new record's clinic cannot be told (422); the message names the field to set."""


class PatientRequired(Exception):
    """A patient's record names its patient in no way the vault follows (422); the
    message names the element to set, never what was sent."""


class SubsetWouldErase(Exception):
    """An update sends a view of the record (labelled SUBSETTED: ``_summary``,
    ``_elements``) that leaves out elements of the caller's view of the stored record
    (422): replacing the record with it would erase them. The message names the
    elements, never their values, and only to a caller who may read the record; to any
    other it says the same whatever the record holds."""


class ChangedMeanwhile(Exception):
    """An update by a reader whose view of the record is cut would store what it was
    not shown as it stood in a version the record has moved on from (409): a colleague's
    change that came between (an HKID corrected, a narrative written) would be reverted
    unseen. The message says only that the record changed."""


class MatchedMeanwhile(Exception):
    """A conditional create found no match, and a record its identifier matches was
    written by another request before the create was (409 where it cannot be answered
    with that record): two creates sent at once, an app sending again a create that
    timed out, each made a record of the one patient (adversary round 66)."""


@dataclass(frozen=True)
class _Kept:
    """What ``_prepare`` put back into an update from the stored version it read: that
    version, the update before anything was put back, and what the caller may read."""

    version_id: int
    sent: dict[str, Any]
    granted: frozenset[DataCategory]


class DecryptionBudget:
    """How many records one request may still decrypt. A batch or transaction shares one
    budget across its entries, so no single request can make the server open the whole
    store (each search is also bounded by the candidate limit)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.spent = 0
        self._lock = threading.Lock()

    def remaining(self) -> int:
        with self._lock:
            return self.limit - self.spent

    def spend(self, count: int) -> None:
        with self._lock:
            if self.spent + count > self.limit:
                raise RequestTooCostly(
                    f"this request would decrypt more than {self.limit} records, the most one "
                    "request may; split it or narrow its searches"
                )
            self.spent += count


@dataclass(frozen=True)
class Caller:
    """Who is asking, from where, and why (a FHIR PurposeOfUse code).

    ``actor`` is None only for the system itself (seeding, administration from the
    CLI on the server host): never for a web request.
    """

    principal: str
    purpose: str = "TREAT"
    source_address: str | None = None
    user_agent: str | None = None
    actor: Actor | None = None
    session_id: str | None = None
    client_id: str | None = None
    scopes: Scopes | None = None
    #: What this request may still decrypt; None for the system itself.
    budget: DecryptionBudget | None = field(default=None, compare=False)
    #: The web request's name (``X-Request-ID``), which every audit entry it leads to
    #: carries; None: each call through the gate gets a name of its own.
    request_id: str | None = field(default=None, compare=False)
    #: The HTTP method the client sent, where its entries must say it: HEAD, answered as
    #: the GET it stands for (``web/head.py``) and recorded as that interaction, with
    #: ``"method": "HEAD"`` in each entry's detail. None: nothing to add (a GET, a write
    #: whose tag names it, the system itself).
    method: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class CareSettings:
    zone: tzinfo
    days_before: int
    days_after: int

    @property
    def window(self) -> CareWindow:
        return CareWindow.of_days(self.days_before, self.days_after)


def method_detail(method: str | None) -> dict[str, str]:
    """What an audit entry's detail says of the request's method: only a HEAD is named
    (every other method is the one its tag implies), so entries of a GET are unchanged."""
    return {"method": "HEAD"} if method == "HEAD" else {}


def caller_event(
    caller: Caller,
    tag: Tag,
    outcome: Outcome,
    at_us: int,
    *,
    detail: dict[str, Any] | None = None,
    **fields: Any,
) -> AuditEvent:
    """An audit entry of what ``caller`` did: who (principal, role, clinics), through
    what (client app, session, address, user agent), in which request and for what
    purpose, with ``fields`` (resource, patient, categories, reason; a purpose or
    request id of its own) as given. The gate's entries and the audit routes' are all
    made by this, so that none of them leaves out who made it or through what."""
    actor = caller.actor
    return AuditEvent(
        tag=tag,
        outcome=outcome,
        at_us=at_us,
        principal=caller.principal,
        role=str(actor.role) if actor else "system",
        clinic_ids=tuple(sorted(actor.clinic_ids)) if actor else (),
        client_id=caller.client_id,
        session_id=caller.session_id,
        source_address=caller.source_address,
        user_agent=(caller.user_agent or "")[:200] or None,
        **({"purpose": caller.purpose, "request_id": caller.request_id} | fields),
        detail={**(detail or {}), **method_detail(caller.method)},
    )


def new_request_id() -> str:
    """A request's name in the audit ledger: 64 random bits, nothing derived from who
    asks or what."""
    return secrets.token_hex(8)


@dataclass
class _Attempt:
    caller: Caller
    tag: Tag
    resource_type: str | None
    resource_id: str | None
    patient_pseudonym: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    #: False when the read that failed found no record at all by this id (so a refusal
    #: names the id by its digest without looking again: on the event loop it may not).
    id_held: bool | None = None
    #: Names every audit entry of this one call through the gate (a search's records, a
    #: batch's patients, its refusal): entries of one request are told apart from a
    #: second, identical request in the same microsecond, and from an entry written twice.
    request_id: str = ""

    def __post_init__(self) -> None:
        if not self.request_id:
            self.request_id = self.caller.request_id or new_request_id()


class ReleaseGuard(Protocol):
    """The release budget. ``claim`` gives what must be recorded with the request's audit
    entries (a rider of the same commit, None if nothing): the rider refuses
    (``ReleaseRefused``) before data leaves when the budget of the person (the account,
    or the practitioner it is: ``detect/budget.holder``) would be exceeded, and records
    the release otherwise."""

    def claim(
        self,
        principal: str,
        role: str,
        pseudonyms: Sequence[str],
        at_us: int,
        practitioner_id: str | None = None,
    ) -> Rider | None: ...


class DecoyWatch(Protocol):
    """Which decoy contact details (honeytokens) appear anywhere in ``values``: their
    kinds, for the audit entry; never the values."""

    def spotted(self, values: Iterable[object]) -> list[str]: ...


class Gate:
    #: The release budget (``carevault.detect.budget``); None: no budget.
    release: ReleaseGuard | None = None
    #: Decoy contact details (``carevault.detect.decoys``); None: none watched.
    decoys: DecoyWatch | None = None
    #: PostgreSQL: reads by id awaited on the event loop (``prefetch``); None: none.
    loop_reads: LoopReads | None = None
    #: The audit ledger's entries, read where a decision rests on who wrote what (whether
    #: anyone but an integration client recorded seeing a patient: ``registration``);
    #: None: no one is taken to have (fail closed).
    audit_entries: LedgerStore | None = None

    def __init__(
        self,
        vault: Vault,
        audit: AuditTrail,
        access: AccessControl | None,
        care: CareSettings,
        *,
        candidate_limit: int,
        containment: ContainmentStore | None = None,
        offline_types: frozenset[str] = SCHEDULING_TYPES,
    ) -> None:
        self.vault = vault
        self.audit = audit
        self.access = access
        self.care = care
        self.candidate_limit = candidate_limit
        self.containment = containment
        self.offline_types = offline_types

    # --- containment -----------------------------------------------------------------------

    def _state(self) -> ContainmentState:
        return self.containment.current() if self.containment else _NO_CONTAINMENT

    def _contain_read(
        self,
        caller: Caller,
        rt: ResourceType,
        head: Head,
        plain_read: bool,
        decision: Decision,
        state: ContainmentState,
    ) -> Decision:
        """``decision`` (the policy's, already granting the read) as an active mode leaves
        it: refused (503) where the mode takes the record offline, cut to the patient's
        name where PHI-offline leaves that for a patient with an open booking.

        Asked after the policy, never before: a mode only ever narrows what the caller
        could read anyway. Asked first, the name-only answer was given to anyone signed
        in (another clinic's desk, an app launched for another patient), and a clinic's
        lock answered 503 to other clinics' staff where the policy answers 403, which
        sorted a list of ids by clinic (adversary round 72)."""
        if not state.active or head.patient_pseudonym is None:
            return decision
        locked = state.locked_clinics
        if locked and self.access is not None and self.access.clinics_of(head) & locked:
            raise ContainmentActive(CLINIC_LOCKED)
        if not state.phi_offline or rt.name in self.offline_types:
            return decision
        actor = caller.actor
        if (
            actor is not None
            and actor.account_id
            and self.access is not None
            and self.access.break_glass.emergency_active(
                actor.account_id, head.patient_pseudonym, self.access.now_us()
            )
        ):
            return decision
        shown = decision.granted & {DataCategory.IDENTITY}
        if (
            plain_read
            and rt.is_patient
            and shown
            and self.vault.has_head("Appointment", head.patient_pseudonym, OPEN_APPOINTMENT)
        ):
            # As the policy decided it but for what is shown: a grant of the glass that
            # opened the name is still named in the entry (the review of round 72).
            return replace(
                decision,
                granted=shown,
                withheld=possible_categories(rt) - shown,
                reason=PHI_OFFLINE_NAME_ONLY,
            )
        raise ContainmentActive(PHI_OFFLINE)

    def _contain_search(self, rt: ResourceType) -> None:
        state = self._state()
        if state.key_lockdown:
            raise ContainmentActive(KEY_LOCKDOWN)
        if state.phi_offline and rt.is_patient_data and rt.name not in self.offline_types:
            raise ContainmentActive(PHI_OFFLINE)

    def _contain_write(self, operations: Sequence[Operation]) -> None:
        self._contain_change([op.resource_type for op in operations])

    def _contain_change(self, types: Iterable[ResourceType]) -> None:
        """Refuse (503) a change of records of ``types`` that an active mode stops."""
        state = self._state()
        if state.key_lockdown:
            raise ContainmentActive(KEY_LOCKDOWN)
        if state.read_only:
            raise ContainmentActive("read-only mode is on: no changes are accepted for now")
        if state.phi_offline and any(
            rt.is_patient_data and rt.name not in self.offline_types for rt in types
        ):
            raise ContainmentActive(PHI_OFFLINE)

    def _contain_move(self, head: Head, clinic_id: str) -> None:
        """Refuse (503) placing the patient of ``head`` at ``clinic_id`` (a registration, a
        transfer) while that clinic, or any clinic the patient belongs to now, is locked:
        a lock is not escaped by moving its patients out, nor widened by moving them in."""
        locked = self._state().locked_clinics
        if not locked or self.access is None:
            return
        if clinic_id in locked or self.access.clinics_of(head) & locked:
            raise ContainmentActive(CLINIC_LOCKED)

    # --- audit -----------------------------------------------------------------------------

    def _event(
        self,
        attempt: _Attempt,
        outcome: Outcome,
        *,
        reason: str = "",
        pseudonym: str | None = None,
        categories: frozenset[DataCategory] = frozenset(),
        decision: Decision | None = None,
        resource_id: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> AuditEvent:
        glass = decision is not None and decision.break_glass_used
        return caller_event(
            attempt.caller,
            attempt.tag,
            outcome,
            self.vault_now(),
            resource_type=attempt.resource_type,
            resource_id=resource_id or attempt.resource_id,
            patient_pseudonym=pseudonym or attempt.patient_pseudonym,
            categories=tuple(sorted(categories)),
            reason=reason,
            detail={**attempt.detail, **(detail or {})},
            request_id=attempt.request_id,
            **(
                {"purpose": "ETREAT", "break_glass_reason": "break-the-glass grant"}
                if glass
                else {}
            ),
        )

    def vault_now(self) -> int:
        return to_micros(self.vault.clock())

    def settled_now(self) -> int:
        """The vault's time, read once every record write stamped before it has
        committed (``db.settled_now``): what a history Bundle is as of."""
        return settled_now(self.vault.engine, self.vault_now)

    def cursor_now(self) -> int | None:
        """The settled time (``settled_now``) a page that moves on by cursor in the
        order records were last written is read as of (``SearchQuery.as_of_us``), on
        PostgreSQL: its writers run side by side, so a write stamped before the page's
        last record may commit after the page was read, and its cursor would pass it
        for good (stop 66). None on SQLite: one writer at a time stamps and commits
        under the write lock, so a read holds every record stamped before the last it
        holds, and taking that lock would queue each search behind the writes."""
        if self.vault.engine.dialect.name != "postgresql":
            return None
        return self.settled_now()

    @contextmanager
    def _attempt(
        self, caller: Caller, tag: Tag, resource_type: str | None, resource_id: str | None = None
    ) -> Iterator[_Attempt]:
        """Record the refusal or failure of whatever the block was doing, then re-raise."""
        attempt = _Attempt(caller, tag, resource_type, resource_id)
        try:
            yield attempt
        except AuditUnavailable:
            raise
        except Exception as error:
            held = _HELD_REFUSALS.get()
            refusals = [self._refusal(attempt, error), *self._told_of(attempt, error)]
            if pinned_connection(self.vault.engine) is not None:
                # Part of a transaction that now rolls back: the write that holds it
                # records the refusal once the transaction is gone (a refused read names
                # its record and patient, as it would on its own: what the detectors and
                # the patient's access report are built on).
                if held is not None:
                    held.extend(refusals)
                raise
            self.audit.record([*(held or ()), *refusals])
            if held:
                held.clear()
            raise

    def _refusal(self, attempt: _Attempt, error: BaseException) -> AuditEvent:
        """The audit entry of an attempt that ``error`` ended: refused by a rule, or failed.
        An id no record holds is named by its keyed digest (``_typed_ids``)."""
        own = f"{attempt.resource_type}/{attempt.resource_id}"
        by_id = attempt.resource_type and attempt.resource_id and not attempt.patient_pseudonym
        asked = [own] if by_id else []
        if isinstance(error, NotFound) and error.reference is not None:
            asked.append(error.reference)
        digests = self._typed_ids(asked, absent={own} if attempt.id_held is False else set())
        if own in digests:
            attempt = replace(attempt, resource_id=digests[own].partition("/")[2])
        entry = self._refused_entry(attempt, error)
        reason = entry.reason
        for typed, digest in digests.items():
            reason = reason.replace(typed, digest)
        return entry if reason == entry.reason else replace(entry, reason=reason)

    def _typed_ids(self, references: Sequence[str], absent: Collection[str] = ()) -> dict[str, str]:
        """Of ``references`` (``Type/id``), those no record holds (live, deleted or
        withheld), each with the reference the ledger names it by: its type and a keyed
        digest of the id (``Vault.unknown_id``). Such an id was typed by the caller, and
        what is typed where an id goes may be a patient's name or HKID number, which the
        ledger would keep in the clear for good (adversary round 67). The same id gives
        the same digest, so repeated tries of one id are still seen as such. ``absent``:
        references a read just found no record by (not looked up again)."""
        found: dict[str, str] = {}
        for reference in dict.fromkeys(references):
            resource_type, _, resource_id = reference.partition("/")
            if resource_id and (
                reference in absent or not self.vault.holds_id(resource_type, resource_id)
            ):
                digest = self.vault.unknown_id(resource_type, resource_id)
                found[reference] = f"{resource_type}/{digest}"
        return found

    def _refused_entry(self, attempt: _Attempt, error: BaseException) -> AuditEvent:
        if isinstance(error, UnseenMatch | TooManyAttempts) and attempt.tag is not (
            Tag.PATIENT_REGISTERED
        ):
            # A refusal the registration throttle counts, as a ``$register`` that matched
            # no one is: ``registration-fishing`` counts it too (adversary round 59: an
            # HKID tested by If-None-Exist, or written onto a patient of one's own, five a
            # quarter of an hour, raised nothing).
            attempt.detail["registration_miss"] = True
        if isinstance(error, AccessDenied | ContainmentActive | ReleaseRefused):
            return self._event(attempt, Outcome.DENIED, reason=str(error))
        reason = str(error) if isinstance(error, NotFound | Gone) else type(error).__name__
        return self._event(attempt, Outcome.FAILED, reason=reason)

    def _told_of(self, attempt: _Attempt, error: BaseException) -> list[AuditEvent]:
        """A refused entry naming the patient an unseen match was (``UnseenMatch.holder``)
        when the refusal's own entry names another (a Patient of the caller's written
        with that patient's HKID): the 409 told that the number is theirs, so their
        access report and the detectors' picks show it (adversary round 59)."""
        holder = error.holder if isinstance(error, UnseenMatch) else None
        if holder is None or holder == attempt.patient_pseudonym:
            return []
        matched = replace(attempt, resource_type="Patient", resource_id=None)
        return [self._event(matched, Outcome.DENIED, reason=str(error), pseudonym=holder)]

    def _record(self, events: Sequence[AuditEvent], release: Rider | None = None) -> None:
        """Durable before anything is returned; inside a transaction Bundle's reads (a
        pinned transaction), part of that transaction, committed with its writes. The
        release budget's ``release`` commits with the events, or refuses and neither is
        written."""
        self.audit.record(events, pinned_connection(self.vault.engine), release)

    def _spot_decoys(self, attempt: _Attempt, values: Sequence[object]) -> None:
        """Mark the request's audit entries when it carries a decoy contact detail: the
        detectors raise a critical alert from that entry."""
        if self.decoys is not None and values:
            spotted = self.decoys.spotted(values)
            if spotted:
                attempt.detail["decoy_contact"] = spotted

    # --- policy ----------------------------------------------------------------------------

    def _scope(self, caller: Caller, rt: ResourceType, interaction: Interaction) -> None:
        if caller.scopes is not None and not caller.scopes.allows(rt.name, interaction):
            raise ScopeDenied(f"the token's scopes do not allow '{interaction.value}' on {rt.name}")

    def _target(
        self,
        caller: Caller,
        head: Head,
        connection: Connection | None = None,
        reading: Connection | None = None,
    ) -> Target:
        assert caller.actor is not None and self.access is not None  # noqa: S101
        return self.access.target(caller.actor, head, self.access.now_us(), connection, reading)

    def _decide_read(
        self,
        caller: Caller,
        rt: ResourceType,
        head: Head,
        *,
        plain_read: bool = False,
        reading: Connection | None = None,
    ) -> Decision:
        """Which categories of ``head`` the caller may read; AccessDenied if not its main one.

        ``plain_read``: a read of the current version by id (what an appointment list
        does), the one request PHI-offline may still answer with a patient's name.
        """
        state = self._state()
        if state.key_lockdown:
            raise ContainmentActive(KEY_LOCKDOWN)
        if caller.actor is None:
            decision = Decision(True, _ALL, frozenset(), "system")
        else:
            self._check_patient_context(caller, rt, head)
            decision = decide(
                caller.actor,
                Right.READ,
                possible_categories(rt),
                self._target(caller, head, reading=reading),
            )
            if rt.category not in decision.granted:
                raise AccessDenied(decision.reason)
        return self._contain_read(caller, rt, head, plain_read, decision, state)

    @staticmethod
    def _check_patient_context(caller: Caller, rt: ResourceType, head: Head) -> None:
        """A caller whose only right to read ``rt`` is a ``patient/`` scope reads only the
        records of the patient in context (and directory records, no one's data)."""
        if caller.scopes is None or (head.patient_pseudonym is None and not rt.is_patient_data):
            return
        confined = caller.scopes.confined_to(rt.name, Interaction.READ)
        if confined is not None and head.patient_pseudonym != confined:
            raise AccessDenied("the token's patient/ scopes reach only the patient in context")

    def _visible(
        self, rt: ResourceType, item: Opened, decision: Decision
    ) -> tuple[Opened, frozenset[DataCategory]] | None:
        """``item`` cut to the granted categories, and the categories it then shows (what
        the audit entry names: what left, not what might have); None if it must not be
        shown at all."""
        if item.body is None:
            return item, frozenset()
        if not decision.withheld & own_categories(rt):
            # Only a contained resource can hold what is withheld: when none does, the
            # stored bytes leave as they are, read only to name the categories they show
            # (no exact-decimal parse, no rewrite). Judged on what the record holds, not
            # on what it may hold, which is every category (``possible_categories``).
            present = frozenset(element_categories(rt, jsonio.inspect(item.body)))
            if present <= decision.granted:
                return item, present
        resource = jsonio.load(item.body)
        shown = subset(rt, resource, decision.granted)
        if shown is None:
            return None
        present = frozenset(element_categories(rt, shown))
        if shown is resource:
            return item, present
        body = jsonio.dumps(shown)
        return Opened(item.head, body), present

    def _open(self, caller: Caller, items: Sequence[Sealed]) -> list[Opened]:
        if caller.budget is not None:
            caller.budget.spend(sum(1 for item in items if item.sealed is not None))
        return open_sealed(self.vault, items, principal=caller.principal, purpose=caller.purpose)

    # --- reads -----------------------------------------------------------------------------

    def read(self, caller: Caller, rt: ResourceType, resource_id: str) -> Opened:
        with self._attempt(caller, Tag.FHIR_READ, rt.name, resource_id) as attempt:
            located, decision = self._locate_for_read(caller, attempt, rt, resource_id)
            return self._read_one(caller, attempt, rt, located, decision)

    def read_later(
        self,
        caller: Caller,
        rt: ResourceType,
        resource_id: str,
        *,
        may_block: bool = True,
        prefetched: Prefetched | None = None,
    ) -> Future[Opened]:
        """``read``, with its audit entry queued for the ledger's next group commit instead
        of waited for in this thread: the same checks, decision, cut and entries, so the
        thread that waits can be one that costs nothing to wait in (the event loop).

        The future gives the record once its entry (and the release budget's record of
        it) is durable; or the error to answer with, once the entry of the refusal is
        durable; or ``AuditUnavailable`` when an entry could not be written. Nothing may
        leave before the future completes, and only what it gives may leave.

        ``may_block=False`` (run on the event loop): raises ``WouldBlock``, having recorded
        and spent nothing, when the read would wait for more than the CPU and the
        ledger (a data key to unwrap). Not for a transaction Bundle's reads, which are
        recorded in its transaction: those go through ``read``.

        ``prefetched`` (with ``may_block=False``, PostgreSQL): the record and its patient's
        registrations as ``prefetch`` just read them on the loop. Nothing else is read
        from the database: a fact not cached, or a containment mode whose checks read
        (PHI-offline, a clinic lock), raises ``WouldBlock`` as above.
        """
        outcome: Future[Opened] = Future()
        # Running: a waiter that gives up (a client gone) cannot cancel it under the
        # ledger's thread, which completes it whatever happens.
        outcome.set_running_or_notify_cancel()
        # The request's context (its count of records, which the web layer reads), for
        # a refusal the ledger's thread records when the release budget declines.
        context = contextvars.copy_context()
        if pinned_connection(self.vault.engine) is not None:
            raise RuntimeError("a pinned transaction's reads are recorded in it: use read")
        attempt = _Attempt(caller, Tag.FHIR_READ, rt.name, resource_id)
        try:
            located, decision = self._locate_for_read(
                caller, attempt, rt, resource_id, own_connection=not may_block, known=prefetched
            )
            if not may_block and not self.vault.keys_at_hand(
                [located.key_id] if located.sealed is not None else []
            ):
                raise WouldBlock("a data key must be unwrapped")
            shown, events, release = self._shown(caller, attempt, rt, located, decision)
            durable = self.audit.submit(events, release)
        except WouldBlock:
            raise
        except LoopBusy as error:
            raise WouldBlock(str(error)) from error
        except AuditUnavailable as error:
            outcome.set_exception(error)
            return outcome
        except Exception as error:
            self._refuse_later(attempt, error, outcome)
            return outcome

        def settle(done: Future[None]) -> None:
            error = done.exception()
            if error is None:
                outcome.set_result(shown)
            elif isinstance(error, AuditUnavailable):
                outcome.set_exception(error)
            else:  # the release budget declined: refused, and that is recorded
                context.run(self._refuse_later, attempt, error, outcome)

        durable.add_done_callback(settle)
        return outcome

    async def prefetch(self, caller: Caller, rt: ResourceType, resource_id: str) -> Prefetched:
        """PostgreSQL: a read by id's facts, read on the event loop for ``read_later``
        (``prefetched``) in the same turn of the loop; ``WouldBlock`` (nothing read,
        recorded or spent) when they cannot be read there now. A clinician's read needs
        their care relationship (and break-the-glass grants), which only a worker
        thread reads: it goes there at once rather than after a wasted round trip."""
        if self.loop_reads is None or self.access is None:
            raise WouldBlock("no reads on the event loop")
        if caller.actor is not None and caller.actor.role in CLINICIANS:
            raise WouldBlock("a clinician's care relationship is read in a worker thread")
        try:
            return await prefetch_read(
                self.loop_reads, self.access.registrations, rt.name, resource_id
            )
        except LoopBusy as error:
            raise WouldBlock(str(error)) from error

    def _refuse_later(self, attempt: _Attempt, error: BaseException, outcome: Future[Any]) -> None:
        """Queue the entry of ``attempt``'s refusal; fail ``outcome`` with ``error`` once it
        is durable, or with ``AuditUnavailable`` if it could not be written."""
        try:
            recorded = self.audit.submit([self._refusal(attempt, error)])
        except Exception as failure:
            outcome.set_exception(failure)
            return

        def settle(done: Future[None]) -> None:
            outcome.set_exception(done.exception() or error)

        recorded.add_done_callback(settle)

    def _locate_for_read(
        self,
        caller: Caller,
        attempt: _Attempt,
        rt: ResourceType,
        resource_id: str,
        *,
        own_connection: bool = False,
        known: Prefetched | None = None,
    ) -> tuple[Sealed, Decision]:
        self._scope(caller, rt, Interaction.READ)
        if known is not None:
            state = self._state()
            if state.phi_offline or state.locked_clinics:
                raise WouldBlock("an active containment mode's checks read the database")
            if known.located is None:
                attempt.id_held = False
                raise not_known(rt.name, resource_id)
            attempt.patient_pseudonym = known.located.head.patient_pseudonym
            if known.located.head.deleted:
                raise WouldBlock(_DELETION_IN_WORKER)
            decision = self._decide_read(
                caller, rt, known.located.head, plain_read=True, reading=NO_READS
            )
            return known.located, decision
        # The record and the policy's facts about it on one connection (on SQLite one
        # snapshot; on PostgreSQL, and on the event loop's own connection, each read sees
        # what was committed, as a READ COMMITTED transaction would); released before the
        # record is opened and the audit entry written.
        with committed_reads(self.vault.engine, own=own_connection) as reading:
            try:
                located = self.vault.locate(rt.name, resource_id, reading)
            except NotFound:
                attempt.id_held = False
                raise
            attempt.patient_pseudonym = located.head.patient_pseudonym
            if located.head.deleted and own_connection:
                raise WouldBlock(_DELETION_IN_WORKER)
            if not located.head.deleted:
                decision = self._decide_read(
                    caller, rt, located.head, plain_read=True, reading=reading
                )
                return located, decision
        # Outside the read transaction: the answer may open the version the deletion ended.
        raise self._deleted(caller, rt, located.head)

    def _deleted(
        self,
        caller: Caller,
        rt: ResourceType,
        *heads: Head,
        reading: Connection | None = None,
        told: str | None = None,
    ) -> NotFound | Gone:
        """The answer to a read of a deletion (``heads[0]``): Gone (``told``) to a caller
        who may read the record (its type's category, for its patient, as each of
        ``heads`` stands) and the version the deletion ended (``_refuse_withheld_whole``:
        a deleted HIV diagnosis is no more known to a pharmacist than a live one);
        NotFound as for an unknown id to any other. Gone to anyone told every caller that
        the id had been a record, and whose; judged on nothing but the deletion, it told
        who may not see a sensitive record that it had been one. ``reading``: the
        connection of a write judging it, inside its transaction."""
        try:
            decisions = [
                self._decide_read(caller, rt, head, plain_read=True, reading=reading)
                for head in heads
            ]
            self._refuse_withheld_whole(caller, rt, heads[0], decisions[0])
        except AccessDenied:
            return self._unknown(rt, heads[0].resource_id)
        except NotFound as unknown:
            return unknown
        return Gone(told or f"{rt.name}/{heads[0].resource_id} was deleted")

    @staticmethod
    def _unknown(rt: ResourceType, resource_id: str) -> NotFound:
        """What an id never used is answered: the one answer for a record the caller may
        not know of."""
        return not_known(rt.name, resource_id)

    def vread(self, caller: Caller, rt: ResourceType, resource_id: str, version_id: int) -> Opened:
        with self._attempt(caller, Tag.FHIR_VREAD, rt.name, resource_id) as attempt:
            self._scope(caller, rt, Interaction.READ)
            current, located = self.vault.locate_version(rt.name, resource_id, version_id)
            attempt.patient_pseudonym = (
                current if located is None else located.head
            ).patient_pseudonym
            if located is None:
                raise self._no_version(caller, rt, current, version_id)
            if located.head.deleted:
                raise self._deleted(
                    caller,
                    rt,
                    located.head,
                    current,
                    told=f"{rt.name}/{resource_id} version {version_id} is a deletion",
                )
            now = self._decide_current(caller, rt, current)
            self._refuse_withheld_whole(caller, rt, current, now)
            decision = self._decide_version(caller, rt, located.head, current, now)
            return self._read_one(caller, attempt, rt, located, decision)

    def _no_version(
        self, caller: Caller, rt: ResourceType, current: Head, version_id: int
    ) -> Exception:
        """The answer to a vread of a version the record does not have: what a read of
        the record answers the caller (403, 404 as for an unknown id, a containment
        refusal) if it refuses, else that the version is not there. A version number
        answered otherwise than a read told a caller who may not read the record how many
        versions it has, and that it exists."""
        if current.deleted:
            deleted = self._deleted(caller, rt, current)
            if isinstance(deleted, NotFound):
                return deleted
        else:
            try:
                decision = self._decide_read(caller, rt, current, plain_read=True)
                self._refuse_withheld_whole(caller, rt, current, decision)
            except (AccessDenied, ContainmentActive, NotFound) as refused:
                return refused
        return NotFound(f"{rt.name}/{current.resource_id} has no version {version_id}")

    def _decide_current(self, caller: Caller, rt: ResourceType, current: Head) -> Decision:
        """``_decide_read`` on a record's current version, for its history and old
        versions: a deleted record the caller may not read is not known to them (404, as
        a read of it answers), never refused (403, which told that the id had been one)."""
        try:
            return self._decide_read(caller, rt, current)
        except AccessDenied:
            if current.deleted:
                raise self._unknown(rt, current.resource_id) from None
            raise

    def _refuse_withheld_whole(
        self,
        caller: Caller,
        rt: ResourceType,
        current: Head,
        now: Decision,
        located: Sealed | None = None,
    ) -> None:
        """NotFound, as for an unknown id, when the record's current version is withheld
        from the caller as a whole (a Condition that became an HIV diagnosis, for a
        pharmacist): its history and old versions would tell that the record exists and
        what it was. A deleted record is judged on the version its deletion ended (under
        that version's facts and the record's now, ``_decide_version``): deleted, an HIV
        diagnosis is as unknown to the pharmacist as it was. ``located``: that version,
        if the caller has it already. Opens it only where a record of ``rt`` can be
        withheld whole from this caller."""
        if rt.category not in HEALTH_CATEGORIES or DataCategory.SENSITIVE_CLINICAL in now.granted:
            return
        judged = current.version_id - 1 if current.deleted else current.version_id
        if located is None or located.head.version_id != judged:
            located = (
                self.vault.locate_ended(current)
                if current.deleted
                else self.vault.locate(rt.name, current.resource_id)
            )
        decision = now
        if current.deleted:
            try:
                decision = self._decide_version(caller, rt, located.head, current, now)
            except AccessDenied:
                raise self._unknown(rt, current.resource_id) from None
        [opened] = self._open(caller, [located])
        if self._visible(rt, opened, decision) is None:
            raise self._unknown(rt, current.resource_id)

    def _decide_version(
        self, caller: Caller, rt: ResourceType, version: Head, current: Head, now: Decision
    ) -> Decision:
        """An old version is shown under the stricter of the facts it had when it was
        written (its patient, its clinic) and those of the record now: a record moved to
        another patient or clinic never opens its past to the new owner's staff."""
        if (version.patient_pseudonym, version.clinic_id) == (
            current.patient_pseudonym,
            current.clinic_id,
        ):
            return now
        then = self._decide_read(caller, rt, version)
        granted = then.granted & now.granted
        if rt.category not in granted:
            raise AccessDenied("this version belongs to a record you may not read")
        withheld = (then.withheld | now.withheld) - granted
        reason = "role and relationship allow it, then and now"
        if withheld:
            reason += f"; withheld: {', '.join(sorted(withheld))}"
        return Decision(
            True, granted, withheld, reason, then.break_glass_used or now.break_glass_used
        )

    def _read_one(
        self,
        caller: Caller,
        attempt: _Attempt,
        rt: ResourceType,
        located: Sealed,
        decision: Decision | None = None,
    ) -> Opened:
        if decision is None:
            decision = self._decide_read(
                caller, rt, located.head, plain_read=attempt.tag is Tag.FHIR_READ
            )
        shown, events, release = self._shown(caller, attempt, rt, located, decision)
        self._record(events, release)
        return shown

    def _shown(
        self,
        caller: Caller,
        attempt: _Attempt,
        rt: ResourceType,
        located: Sealed,
        decision: Decision,
    ) -> tuple[Opened, list[AuditEvent], Rider | None]:
        """One record opened and cut to ``decision``, with what must be recorded before it
        may leave: its audit entry and the release budget's record of its patient."""
        visible = self._visible(rt, self._open(caller, [located])[0], decision)
        if visible is None:
            # Withheld as a whole (e.g. a sensitive record): indistinguishable from absent.
            raise not_known(rt.name, located.head.resource_id)
        shown, categories = visible
        release = (
            self._release(caller, [located.head.patient_pseudonym])
            if located.head.patient_pseudonym is not None
            else None
        )
        event = self._event(
            attempt,
            Outcome.SUCCESS,
            categories=categories,
            decision=decision,
            reason=decision.reason,
        )
        return shown, [event], release

    def history(
        self,
        caller: Caller,
        rt: ResourceType,
        resource_id: str,
        *,
        since_us: int | None = None,
        as_of_us: int | None = None,
        start: int | None = None,
        count: int | None = None,
    ) -> VersionPage:
        """One page of a record's versions the caller may read, newest first (each judged
        by ``_decide_version``), from version ``start`` down (None: the newest; ``paging.
        cut``), how many there are in all, and where the pages before and after it start;
        only versions written at or after ``since_us`` and, with ``as_of_us``, at or
        before it: every page of an answer as of one instant holds and counts only what
        was settled then (``settled_now``), whatever was written while a client paged.
        Only the page is opened, returned and recorded."""
        with self._attempt(caller, Tag.FHIR_HISTORY, rt.name, resource_id) as attempt:
            self._scope(caller, rt, Interaction.READ)
            current, versions = self.vault.locate_history(rt.name, resource_id)
            attempt.patient_pseudonym = current.patient_pseudonym
            now = self._decide_current(caller, rt, current)
            judged = current.version_id - 1 if current.deleted else current.version_id
            latest = next((item for item in versions if item.head.version_id == judged), None)
            self._refuse_withheld_whole(caller, rt, current, now, latest)
            decisions: dict[tuple[str | None, str | None], Decision | None] = {}
            readable: list[tuple[Sealed, Decision]] = []
            for item in versions:
                stamped = item.head.last_updated_us
                if since_us is not None and stamped < since_us:
                    continue
                if as_of_us is not None and stamped > as_of_us:
                    continue
                key = (item.head.patient_pseudonym, item.head.clinic_id)
                if key not in decisions:
                    try:
                        decisions[key] = self._decide_version(caller, rt, item.head, current, now)
                    except AccessDenied:
                        decisions[key] = None
                decision = decisions[key]
                if decision is not None:
                    readable.append((item, decision))
            if any(not main_categories(rt) <= decision.granted for _, decision in readable):
                # Which versions are withheld whole (an old HIV diagnosis, for a
                # pharmacist) only their bodies say: every readable one is opened, and
                # those are left out of the count as well as the page (a total above the
                # entries told that a hidden version was there).
                opened = self._open(caller, [item for item, _ in readable])
                shown = [
                    (item, decision)
                    for item, (_, decision) in zip(opened, readable, strict=True)
                    if self._visible(rt, item, decision) is not None
                ]
                where = cut([item.head.version_id for item, _ in shown], start, count)
                told = self._told_by_count(
                    [item for item, _ in [*shown[: where.begin], *shown[where.end :]]]
                )
                page = self._show_decided(
                    attempt,
                    shown[where.begin : where.end],
                    versioned=True,
                    named=sorted(told),
                    told=told,
                )
                return VersionPage(page, len(shown), where.previous, where.following)
            where = cut([item.head.version_id for item, _ in readable], start, count)
            chosen = readable[where.begin : where.end]
            opened = self._open(caller, [item for item, _ in chosen])
            told = self._told_by_count(
                [item for item, _ in [*readable[: where.begin], *readable[where.end :]]],
                versions=True,
            )
            page = self._show_decided(
                attempt,
                [(item, decision) for item, (_, decision) in zip(opened, chosen, strict=True)],
                versioned=True,
                named=sorted(told),
                told=told,
            )
            return VersionPage(page, len(readable), where.previous, where.following)

    def search(self, caller: Caller, query: SearchQuery) -> tuple[list[Opened], int]:
        rt = query.resource_type
        with self._attempt(caller, Tag.FHIR_SEARCH, rt.name) as attempt:
            self._scope(caller, rt, Interaction.SEARCH)
            self._contain_search(rt)
            attempt.detail["params"] = sorted({name for name, _ in query.applied})
            # How many values each criterion listed (``family=a,b``), counts only: a list
            # that gives few patients picked each (``detect.model.listed``).
            if listed := {
                n: v.count(",") + 1 for n, v in query.applied if "," in v and n[:1] != "_"
            }:
                attempt.detail["alternatives"] = listed
            _refuse_unreadable_criteria(caller, query)
            self._spot_decoys(
                attempt, [*(value for _, value in query.applied), *_searched_contacts(query)]
            )
            shape = name_shape(query.applied)
            if shape is not None:
                attempt.detail["name_shape"] = shape
            restrict, keep = self._reach(caller, rt)
            seen = identifiers_seen(caller, query, self.vault.zone)
            if seen is not None:
                keep = seen if keep is None else _both(keep, seen)
            found, total = find(
                self.vault,
                query,
                principal=caller.principal,
                purpose=caller.purpose,
                restrict=restrict,
                candidate_limit=self.candidate_limit,
                on_open=caller.budget.spend if caller.budget is not None else None,
                keep=keep,
            )
            named = self._named(query)
            past = _PastPage(self.vault, caller, query, restrict, keep, self.candidate_limit, total)
            if len(found) < total and _names_one_by_one(caller, query):
                named = sorted({*named, *past.patients()})
            told = (
                dict.fromkeys(named, self._told_by_total(query, past, found))
                if named and len(found) < total and not withholds_counts(caller, query)
                else {}
            )
            sealed = [item for item in found if isinstance(item, Sealed)]
            opened = {item.head.row_id: item for item in self._open(caller, sealed)}
            opened.update((item.head.row_id, item) for item in found if isinstance(item, Opened))
            page = [opened[item.head.row_id] for item in found]
            shown = self._show_many(caller, attempt, page, named=named, told=told)
            return shown, total

    def _told_by_total(
        self, query: SearchQuery, past: _PastPage, page: Sequence[Sealed | Opened]
    ) -> frozenset[DataCategory]:
        """The categories a search's ``total`` tells of the patients it names, where it
        counts records its page does not show: that a record of the type exists (the
        type's category) matching the criteria (the categories of the elements
        searched), and whether it is sensitive: a sensitive code asked, or, for health
        records picked by a criterion other than their patient and status, any counted
        record not marked ordinary (``marked_ordinary``; one indexed before these rules
        counts as sensitive). Adversary round 74: ``Condition?patient=X&code=B20
        &_summary=count`` told a doctor that X has HIV in an entry naming X with no
        category, so the incident's scope and X's access report said nothing of
        clinical data left, where ``_elements=id`` of the same search said
        sensitive_clinical.

        Every patient named is told it: a total over ``patient=A,B`` or an
        Appointment's ``actor`` does not say whose records it counts (the review of round
        74: a booking is its first patient's, not the one ``actor`` names). Only the
        last case looks at the records, once, unsorted (none is opened); a count of a
        patient's records by patient and status alone tells nothing of what they hold,
        and a clinic app's everyday paging (``Observation?patient=X``) looks at nothing
        more than before."""
        rt = query.resource_type
        searched = {rt.category} | {
            category for _, category in searched_categories(rt, query_params(query))
        }
        health = rt.category in HEALTH_CATEGORIES
        # A sensitive health record is sensitive_clinical where it would be ordinary
        # clinical data, as a read of it names it (``main_category``).
        sensitive = frozenset(
            DataCategory.SENSITIVE_CLINICAL if category is rt.category else category
            for category in searched
        )
        if sensitive_code_param(rt, query) is not None:
            return sensitive if health else frozenset({*searched, DataCategory.SENSITIVE_CLINICAL})
        if not health or not picks_records(query):
            return frozenset(searched)
        on_page = {item.head.row_id for item in page}
        counted = [item.head for item in past.every() if item.head.row_id not in on_page]
        if len(marked_ordinary(self.vault, counted)) < len(counted):
            return sensitive
        return frozenset(searched)

    def _named(self, query: SearchQuery) -> list[str]:
        """The patients a search names in its criteria (``patient=``, ``subject=``; a
        Patient search's ``_id``), as pseudonyms. Its answer tells something of each
        whether or not it shows a record of theirs: ``Appointment?patient=X
        &_summary=count`` how many bookings X has, ``Condition?patient=X&code=...``
        whether X has that diagnosis, ``Patient?_id=X&birthdate=...`` X's birth date.
        Each is therefore named in the ledger and counted by the release budget, as a
        read of them is (adversary round 51: counts asked patient after patient, or of
        a list of them at once, named no one and spent nothing)."""
        rt = query.resource_type
        ids = [i for condition in query.patients for i in condition.patient_ids]
        # Records named by id or by reference, whose patient the answer concerns: a
        # Patient search's ``_id``, another patient record's ``_id``, and a Patient at a
        # parameter that may point at one without being a patient parameter
        # (``Appointment?actor=Patient/X``).
        records: list[tuple[str, str]] = []
        if rt.is_patient:
            ids += [i for alternatives in query.ids for i in alternatives]
        elif rt.is_patient_data:
            records += [(rt.name, i) for alternatives in query.ids for i in alternatives]
        for name, value in query.applied:
            param = rt.param(name.partition(":")[0])
            if param is None or param.patient or "Patient" not in param.targets:
                continue
            for part in split_values(value):
                target, slash, ident = part.rpartition("/")
                if slash and target.split("/")[-1] == "Patient":
                    ids.append(ident)
                elif not slash:
                    # A bare id matches a record of each type it may point at, a Patient
                    # among them (``Appointment?actor=X``: adversary round 57).
                    ids.append(part)
        named: set[str] = set()
        if ids:
            named.update(self.vault.patient_pseudonyms(list(dict.fromkeys(ids))).values())
        if records:
            named.update(
                item.head.patient_pseudonym
                for item in self.vault.locate_many(list(dict.fromkeys(records)))
                if item.head.patient_pseudonym is not None
            )
        return sorted(named)

    def refuse_unseen_matches(self, caller: Caller, query: SearchQuery, visible: int) -> None:
        """Before a conditional create whose criteria matched ``visible`` records the
        caller may see: UnseenMatch if others match too. Counted from the index (nothing
        is returned); each refusal counts as a failed registration of the account, so
        that probing identifiers is as slow as fishing with registrations, and is in the
        ledger as a refused create. The existence of a match is what it tells: less harm
        than a duplicate patient whose history is split across two records.

        Only for Patient: a duplicate of any other record splits no one's history, and
        on clinical records the refusal was an oracle of another clinic's diagnoses
        (``Condition?patient=X&code=HIV`` answered 409 for yes, a write's 403 for no).
        A hidden match of another type counts as no match: the write is judged as ever.

        Only the identifier is asked about: what makes a duplicate is a second record of
        an identifier already held. The other criteria are left out of the count, or
        they would tell, beside an HKID the caller holds, the birth date, name or phone
        of the patient registered with it (``identifier=X&birthdate=ge1982``: 409 or a
        create). Criteria without an identifier refuse nothing."""
        if caller.actor is None or self.access is None or query.resource_type.name != "Patient":
            return
        rt = query.resource_type
        held = [term for term in query.terms if term.param.name == "identifier"]
        if not held:
            return
        failures = self.access.registrations.failures
        actor = caller.actor
        who = fisher(actor.account_id, actor.practitioner_id, caller.principal)
        with (
            self._attempt(caller, Tag.FHIR_CREATE, rt.name) as attempt,
            failures.counting(who) as counted,
        ):
            attempt.detail["conditional"] = sorted({name for name, _ in query.applied})
            _found, total = find(
                self.vault,
                SearchQuery(resource_type=rt, terms=held),
                principal=caller.principal,
                purpose=caller.purpose,
                restrict=None,
                candidate_limit=self.candidate_limit,
                on_open=caller.budget.spend if caller.budget is not None else None,
            )
            # Criteria of identifiers alone match what this count finds: a match here
            # the caller may read, which its search did not find, was written since by
            # another request (the same create sent twice at once), not hidden from it.
            # Refused, the desk was told of "a record you may not see", and the throttle
            # and the detectors counted it (adversary round 66); the create finds that
            # record when it is written (``Put.unless_held``).
            written_since = (
                len(held) == len(query.terms)
                and not (query.ids or query.patients or query.last_updated or query.dates)
                and total == len(_found)
                and not self._hides_any(caller, rt, _found)
            )
            if total > visible and not written_since:
                counted.missed()
                # Whom the refusal tells of: in the ledger, their access report and the
                # detectors' picks, as a search's entry names whom it shows (adversary
                # round 59: a nurse tested a list of HKIDs against the group, five every
                # quarter of an hour, and no entry named the patients it found).
                attempt.patient_pseudonym = self._unseen_holder(caller, rt, _found)
                raise UnseenMatch(  # named by the entry itself: no second one
                    # A conditional update (``PUT Patient?identifier=``) is refused
                    # here too: the words name no header it did not send.
                    "the conditional criteria match a record you may not see; for a "
                    "patient known at another clinic, register them at yours with "
                    "Patient/$register (identifier and birth date) instead of creating a "
                    "second record"
                )

    def _hides_any(
        self, caller: Caller, rt: ResourceType, found: Sequence[Sealed | Opened]
    ) -> bool:
        """Whether the caller may not read one of ``found``."""
        for item in found:
            try:
                self._decide_read(caller, rt, item.head)
            except (AccessDenied, ContainmentActive):
                return True
        return False

    def _unseen_holder(
        self, caller: Caller, rt: ResourceType, found: Sequence[Sealed | Opened]
    ) -> str | None:
        """The patient of the first of ``found`` the caller may not read (else of the
        first of them): whom a refusal for an unseen match tells of."""
        for item in found:
            try:
                self._decide_read(caller, rt, item.head)
            except (AccessDenied, ContainmentActive):
                return item.head.patient_pseudonym
        return found[0].head.patient_pseudonym if found else None

    def _reach(
        self, caller: Caller, rt: ResourceType
    ) -> tuple[Any, Callable[[Opened], bool] | None]:
        """The SQL restriction for a search, and a filter on opened records where the
        policy depends on what is inside them (sensitive records)."""
        if caller.actor is None or self.access is None:
            return None, None
        actor = caller.actor
        probe = decide(actor, Right.READ, possible_categories(rt), Target(None, frozenset()))
        if rt.category not in probe.granted:
            raise AccessDenied(f"{actor.role} may not read {rt.category}")
        restrict = self.access.restriction(actor, rt, self.access.now_us())
        confined = caller.scopes.confined_to(rt.name, Interaction.SEARCH) if caller.scopes else None
        if confined is not None and rt.is_patient_data:
            restrict = self.access.confine(restrict, confined)
        if rt.category in HEALTH_CATEGORIES and DataCategory.SENSITIVE_CLINICAL in probe.withheld:
            # A record of a health type may be sensitive as a whole (``main_category``);
            # one of another type only in some elements, which the cut removes.
            return (
                restrict,
                lambda item: subset(rt, jsonio.load(item.body or b"{}"), probe.granted) is not None,
            )
        return restrict, None

    def _show_many(
        self,
        caller: Caller,
        attempt: _Attempt,
        items: Sequence[Opened],
        *,
        named: Sequence[str] = (),
        told: Mapping[str, frozenset[DataCategory]] | None = None,
    ) -> list[Opened]:
        """Per-record decisions for a page of records, then one audit entry per patient
        (and per patient ``named`` by the request's criteria, records shown or not, with
        the categories its total ``told`` of them)."""
        if self.access is not None and caller.actor is not None:
            self.access.registrations.prefetch(
                [item.head.patient_pseudonym for item in items if item.head.patient_pseudonym]
            )
        decisions: dict[tuple[str | None, str | None, str], Decision] = {}
        decided: list[tuple[Opened, Decision]] = []
        for item in items:
            rt = RESOURCE_TYPES[item.head.resource_type]
            key = (item.head.patient_pseudonym, item.head.clinic_id, rt.name)
            if key not in decisions:
                decisions[key] = self._decide_read(caller, rt, item.head)
            decided.append((item, decisions[key]))
        return self._show_decided(attempt, decided, named=named, told=told)

    def _show_decided(
        self,
        attempt: _Attempt,
        decided: Sequence[tuple[Opened, Decision]],
        *,
        versioned: bool = False,
        named: Sequence[str] = (),
        told: Mapping[str, frozenset[DataCategory]] | None = None,
    ) -> list[Opened]:
        """Records cut to what each decision grants, then their audit entries."""
        cut = self._cut(decided)
        self._record_shown(attempt, cut, versioned=versioned, named=named, told=told)
        return [item for item, _, _ in cut]

    def _cut(
        self, decided: Sequence[tuple[Opened, Decision]]
    ) -> list[tuple[Opened, Decision, frozenset[DataCategory]]]:
        """Each record cut to what its decision grants, with the categories it shows;
        records withheld as a whole are left out."""
        cut: list[tuple[Opened, Decision, frozenset[DataCategory]]] = []
        for item, decision in decided:
            visible = self._visible(RESOURCE_TYPES[item.head.resource_type], item, decision)
            if visible is not None:
                cut.append((visible[0], decision, visible[1]))
        return cut

    def _record_shown(
        self,
        attempt: _Attempt,
        shown: Sequence[tuple[Opened, Decision, frozenset[DataCategory]]],
        *,
        versioned: bool = False,
        named: Sequence[str] = (),
        told: Mapping[str, frozenset[DataCategory]] | None = None,
    ) -> None:
        """One audit entry per patient naming the categories actually shown and the records
        (``versioned``: the versions) returned; durable before anything is returned. A
        patient ``named`` by the criteria with nothing shown gets an entry returning
        nothing, and is counted by the release budget all the same; its categories are
        those the answer's total ``told`` of them (``_told_by_total``)."""
        by_patient: dict[str | None, tuple[set[DataCategory], list[str], Decision | None]] = {}
        for item, decision, present in shown:
            categories, references, _ = by_patient.setdefault(
                item.head.patient_pseudonym, (set(), [], decision)
            )
            categories.update(present)
            references.append(
                f"{item.head.reference}/_history/{item.head.version_id}"
                if versioned
                else item.head.reference
            )
        for pseudonym in named:
            by_patient.setdefault(pseudonym, (set(), [], None))[0].update(
                (told or {}).get(pseudonym, ())
            )
        events = [
            self._event(
                attempt,
                Outcome.SUCCESS,
                pseudonym=pseudonym,
                categories=frozenset(categories),
                decision=decision,
                # How many patients the response named: the detectors count only the
                # patients a person picked, not every match of a broad search.
                detail={"returned": references}
                | ({"patients": len(by_patient)} if len(by_patient) > 1 else {}),
            )
            for pseudonym, (categories, references, decision) in by_patient.items()
        ] or [self._event(attempt, Outcome.SUCCESS, detail={"returned": []})]
        # Every patient an entry names is counted by the budget, the request's own
        # patient among them where an entry falls back to it (``_event``): a count-only
        # ``$everything`` or instance history of a patient (``_count=0``, an empty page)
        # told how many records or versions they had, in an entry naming them, and was
        # answered past a spent budget, charged nothing (adversary round 73).
        charged = {p or attempt.patient_pseudonym for p in by_patient or (None,)}
        self._record(events, self._release(attempt.caller, sorted(p for p in charged if p)))

    def _release(self, caller: Caller, pseudonyms: Sequence[str]) -> Rider | None:
        """The release budget's record of what this response gives, to be written with
        its audit entries (it refuses there, before anything is returned)."""
        if self.release is None or caller.actor is None or not pseudonyms:
            return None
        actor = caller.actor
        return self.release.claim(
            caller.principal, str(actor.role), pseudonyms, self.vault_now(), actor.practitioner_id
        )

    def everything(
        self,
        caller: Caller,
        patient_id: str,
        *,
        offset: int = 0,
        after: tuple[int, int] | None = None,
        count: int | None = None,
        types: frozenset[str] | None = None,
        since_us: int | None = None,
        care: CarePeriod | None = None,
        as_of_us: int | None = None,
        began_us: int | None = None,
    ) -> ChartPage:
        """One page of the patient's compartment the caller may read, and how many records
        it holds in all; only the page is opened, returned and recorded. The patient comes
        first (if last written by ``began_us``, the settled time the answer's first page
        was as of), then each record where it was last written (``paging.chart_place``);
        a page starts at ``offset``, or after the place ``after`` (a cursor's: whatever
        was written or deleted before it since moves nothing past the page). With
        ``as_of_us`` (a settled time, ``settled_now``) only records last written by then
        are counted and shown: a write not committed then stamps after it, so after the
        page's last record (stop 66).

        ``types`` and ``since_us`` (changed at or after) narrow on clear metadata, before
        anything is decided or opened. ``care`` (``start``/``end``) narrows on care dates,
        which are encrypted: every record the caller may read whose type has a care date
        is opened (charged to the request's decryption budget, which refuses the request
        rather than open more) and judged on what the caller may see of it; only the
        page is returned and recorded."""
        patient_type = RESOURCE_TYPES["Patient"]
        with self._attempt(caller, Tag.FHIR_EVERYTHING, "Patient", patient_id) as attempt:
            self._scope(caller, patient_type, Interaction.READ)
            located = self.vault.locate("Patient", patient_id)
            attempt.patient_pseudonym = located.head.patient_pseudonym
            if located.head.deleted:
                raise self._deleted(caller, patient_type, located.head)
            assert located.head.patient_pseudonym is not None  # noqa: S101 - every Patient has one
            patient_decision = self._decide_read(caller, patient_type, located.head)

            def wanted(head: Head) -> bool:
                return (
                    (types is None or head.resource_type in types)
                    and (since_us is None or head.last_updated_us >= since_us)
                    and (as_of_us is None or head.last_updated_us <= as_of_us)
                )

            subject = located.head.row_id

            def place(item: Sealed | Opened) -> tuple[int, int]:
                head = item.head
                return chart_place(head.last_updated_us, head.row_id, subject, began_us)

            decided = [(located, patient_decision)] if wanted(located.head) else []
            compartment = self.vault.locate_compartment(located.head.patient_pseudonym)
            for item in compartment:
                if item.head.row_id != subject and wanted(item.head):
                    decision = self._may_read(caller, item)
                    if decision is not None:
                        decided.append((item, decision))
            decided.sort(key=lambda pair: place(pair[0]))
            dated = care is not None and any(
                has_care_date(RESOURCE_TYPES[item.head.resource_type]) for item, _ in decided
            )
            if dated or self._hides_whole_records(caller):
                # Some records can be judged only once opened (care dates are encrypted;
                # sensitive records may be withheld whole): open them all, so that the
                # total counts only what may be shown, then page.
                opened = self._open(caller, [item for item, _ in decided])
                cut = self._cut(list(zip(opened, [d for _, d in decided], strict=True)))
                if care is not None:
                    cut = [entry for entry in cut if self._in_care(entry[0], care)]
                begin, end = chart_cut([place(item) for item, _, _ in cut], offset, after, count)
                page, total = cut[begin:end], len(cut)
                last: Sealed | Opened | None = cut[end - 1][0] if end > begin else None
                counted: list[Sealed | Opened] = [item for item, _, _ in [*cut[:begin], *cut[end:]]]
            else:
                places = [place(item) for item, _ in decided]
                begin, end = chart_cut(places, offset, after, count)
                chosen = decided[begin:end]
                opened = self._open(caller, [item for item, _ in chosen])
                page = self._cut(list(zip(opened, [d for _, d in chosen], strict=True)))
                total = len(decided)
                last = chosen[-1][0] if chosen else None
                counted = [item for item, _ in [*decided[:begin], *decided[end:]]]
            told = self._told_by_count(counted)
            self._record_shown(attempt, page, named=sorted(told), told=told)
            shown = [item for item, _, _ in page]
            return ChartPage(shown, total, begin, None if last is None else place(last))

    def _told_by_count(
        self, counted: Sequence[Sealed | Opened], *, versions: bool = False
    ) -> dict[str, frozenset[DataCategory]]:
        """The categories a total tells of each patient whose records (``versions``: a
        record's versions) it counts past its page: that a record of the type exists (its
        category), and whether it is sensitive: an opened record by what it holds
        (``main_category``), a sealed health record unless marked ordinary (a version,
        which no marker speaks for, is taken as sensitive). Adversary round 76:
        ``$everything?_count=0`` and ``_history?_count=0`` named their patient with no
        category, so the incident's scope said nothing of the diagnosis the total
        counted."""
        sealed = [
            item.head
            for item in counted
            if isinstance(item, Sealed)
            and RESOURCE_TYPES[item.head.resource_type].category in HEALTH_CATEGORIES
        ]
        ordinary = marked_ordinary(self.vault, sealed) if sealed and not versions else set()
        told: dict[str, set[DataCategory]] = {}
        for item in counted:
            pseudonym = item.head.patient_pseudonym
            if pseudonym is None:
                continue
            rt = RESOURCE_TYPES[item.head.resource_type]
            if isinstance(item, Opened):
                body = None if item.body is None else jsonio.load(item.body)
                category = main_category(rt, body) if body is not None else rt.category
                found = {category} if body is not None else set(main_categories(rt))
            elif rt.category in HEALTH_CATEGORIES and item.head.row_id not in ordinary:
                found = {DataCategory.SENSITIVE_CLINICAL}
            else:
                found = {rt.category}
            told.setdefault(pseudonym, set()).update(found)
        return {pseudonym: frozenset(found) for pseudonym, found in told.items()}

    def _in_care(self, item: Opened, care: CarePeriod) -> bool:
        """Whether what the caller sees of ``item`` falls in the care period (a care
        date withheld from the caller is not judged on: the record is kept)."""
        if item.body is None:
            return True
        rt = RESOURCE_TYPES[item.head.resource_type]
        return within(rt, jsonio.load(item.body), care, self.care.zone)

    def _hides_whole_records(self, caller: Caller) -> bool:
        """Whether some records are withheld from ``caller`` as a whole once opened."""
        if caller.actor is None:
            return False
        probe = decide(caller.actor, Right.READ, frozenset(DataCategory), Target(None, frozenset()))
        return DataCategory.SENSITIVE_CLINICAL in probe.withheld

    def _may_read(self, caller: Caller, item: Sealed) -> Decision | None:
        """The decision on ``item`` if the caller may read it (scopes and policy); else None."""
        rt = RESOURCE_TYPES[item.head.resource_type]
        if caller.scopes is not None and not caller.scopes.allows(rt.name, Interaction.READ):
            return None
        try:
            return self._decide_read(caller, rt, item.head)
        except AccessDenied:
            return None

    def include(self, caller: Caller, references: Sequence[tuple[str, str]]) -> list[Opened]:
        """Directory resources (no one's patient data) that returned records refer to."""
        located = [
            item
            for item in self.vault.locate_many(references)
            if item.head.patient_pseudonym is None and self._may_read(caller, item) is not None
        ]
        with self._attempt(caller, Tag.FHIR_READ, None) as attempt:
            return self._show_many(caller, attempt, self._open(caller, located)) if located else []

    def reindex(
        self, principal: str, *, batch: int, progress: Callable[[int], None] | None = None
    ) -> int:
        """Rebuild every record's search tokens and clear dates (an operator's chore after
        an upgrade that indexes more). Records are opened in this process and released to
        no one; the unwrap log names the purpose, and the ledger holds the run."""
        with self._attempt(Caller(principal=principal), Tag.ADMIN_INDEX_REBUILT, None) as attempt:
            done = reindex(
                self.vault, principal=principal, purpose="reindex", batch=batch, progress=progress
            )
            self._record([self._event(attempt, Outcome.SUCCESS, reason=f"{done} records")])
            return done

    # --- break the glass ------------------------------------------------------------------

    def break_glass(
        self, caller: Caller, patient_id: str, reason: str, text: str, *, emergency: bool
    ) -> Grant:
        """A clinician opens one patient's record without a care relationship, for a
        while, saying why (queued for privacy review). An ``emergency`` request, made
        while patient data is offline, waits for a second privacy officer's approval."""
        tag = Tag.EMERGENCY_REQUESTED if emergency else Tag.ACCESS_BREAK_GLASS
        with self._attempt(caller, tag, "Patient", patient_id) as attempt:
            actor = caller.actor
            if actor is None or actor.role not in CLINICIANS or not actor.account_id:
                raise AccessDenied("only a clinician may break the glass")
            if self.access is None:
                raise AccessDenied("access control is not configured")
            # A grant is for reading the record: an app not granted that may not ask.
            self._scope(caller, RESOURCE_TYPES["Patient"], Interaction.READ)
            located = self.vault.locate("Patient", patient_id)
            pseudonym = located.head.patient_pseudonym
            if located.head.deleted:
                # Told only to who may read the record, as a read tells it: 410 to any
                # clinician said which ids had been patients.
                raise self._deleted(caller, RESOURCE_TYPES["Patient"], located.head)
            if pseudonym is None:
                raise Gone(f"Patient/{patient_id} was deleted")
            attempt.patient_pseudonym = pseudonym
            # An app confined to the patient in context (a patient launch) asks for no
            # grant on anyone else: the grant would open that record to the user's other
            # sessions, in words the app chose.
            self._check_patient_context(caller, RESOURCE_TYPES["Patient"], located.head)
            grant = self.access.break_glass.grant(
                actor.account_id,
                pseudonym,
                reason,
                text,
                emergency=emergency,
                practitioner_id=actor.practitioner_id,
            )
            event = self._event(
                attempt,
                Outcome.SUCCESS,
                reason=f"grant {grant.grant_id}"
                + (" awaiting approval" if emergency else f" until {grant.expires_us}"),
            )
            self.audit.record(
                [replace(event, purpose="ETREAT", break_glass_reason=grant.reason.value)]
            )
            return grant

    # --- writes ----------------------------------------------------------------------------

    def write(
        self,
        caller: Caller,
        operations: Sequence[Operation],
        *,
        within: Within | None = None,
        per_patient: bool = False,
        count_probes: bool = True,
    ) -> list[WriteResult]:
        """Apply ``operations`` in one transaction, each allowed on what is stored and on
        what is sent, with their audit entries. ``within`` runs in the same transaction
        after the writes (a transaction Bundle's reads): if it raises, nothing is written.
        ``per_patient`` (a bulk load by the system only): one audit entry per patient of
        the batch, naming every record written (``gate/loading.py``). ``count_probes``
        False: a refusal as another clinic's patient's twin is not counted against the
        registration throttle, because the caller counts it (a bulk load splitting a
        refused batch counts the line it isolates, once); a wait is kept all the same."""
        if per_patient and caller.actor is not None:
            raise AccessDenied("only the system loads records in bulk")
        if caller.actor is not None and any(
            isinstance(op, Put) and op.derived is not None for op in operations
        ):
            # What a record is found by and the categories its entry names are worked
            # out here from what is sent, unless the system's own loader did it already.
            raise AccessDenied("only the system says what a record's index holds")
        tag = (
            Tag.FHIR_IMPORT
            if per_patient
            else Tag.FHIR_CREATE
            if all(isinstance(op, Put) and op.fresh for op in operations)
            else Tag.FHIR_UPDATE
        )
        first = operations[0] if operations else None
        held = _HELD_REFUSALS.set([] if within is not None else None)
        try:
            return self._write(caller, operations, tag, first, within, per_patient, count_probes)
        finally:
            _HELD_REFUSALS.reset(held)

    def _write(
        self,
        caller: Caller,
        operations: Sequence[Operation],
        tag: Tag,
        first: Operation | None,
        within: Within | None,
        per_patient: bool,
        count_probes: bool,
    ) -> list[WriteResult]:
        with self._attempt(caller, tag, first.resource_type.name if first else None) as attempt:
            self._spot_decoys(attempt, [op.resource for op in operations if isinstance(op, Put)])
            self._contain_write(operations)
            prepared: list[Operation] = []
            seen: dict[int, tuple[int, dict[str, Any]]] = {}
            # Views saved back: what each would erase, or None (``_prepare``).
            erasing: dict[int, tuple[str, ...] | None] = {}
            # What each Put sent, before anything withheld was put back into it.
            sent: dict[int, dict[str, Any]] = {}
            # What was put back into each update, from which version (``_prepare``).
            kept: dict[int, _Kept] = {}
            # The caller's view of the version each update replaces (``_view_shown``).
            shown: dict[int, dict[str, Any]] = {}
            # The Puts whose bodies may hold a local reference (R4 ref-1 is judged).
            local: set[int] = set()
            for operation in operations:
                ready, existing, left_out, restored, view, refers = self._prepare(caller, operation)
                prepared.append(ready)
                if view is not None:
                    shown[id(ready)] = view
                if restored is not None:
                    kept[id(ready)] = restored
                if isinstance(operation, Put):
                    sent[id(ready)] = without_subsetted(operation.resource)
                    # A bulk load's checking processes judge its references
                    # (``bulk.checking``): nothing here for it.
                    if not per_patient and (
                        refers or (refers is None and contained.may_refer_locally(sent[id(ready)]))
                    ):
                        local.add(id(ready))
                if existing is not None:
                    seen[id(ready)] = existing
                if left_out is None or left_out:
                    erasing[id(ready)] = left_out
            decisions: dict[int, Decision] = {}
            # The clinics locked now, read once for the whole request (one transaction).
            locked = self._state().locked_clinics
            care_notes: list[dict[str, Any] | None] = []
            registered: dict[str, frozenset[str]] = {}
            # The system's writes read no care relationship back (only a member of staff's
            # standing does) and, with no clinic locked, no registration either: what they
            # open is derived after the writes, for the whole request at once, and the
            # relationships inserted together before the commit.
            deferred_care: dict[int, list[dict[str, Any]]] | None = (
                {} if caller.actor is None and not locked and self.access is not None else None
            )

            def authorize(
                connection: Connection, operation: Operation, head: Head, stored: Head | None
            ) -> None:
                try:
                    judge(connection, operation, head, stored)
                except Exception:
                    # The refusal names what was refused, as a refused read does: the
                    # record, and whose it is (the stored record's patient; a new one's),
                    # so that the patient's access report and the detectors see the
                    # attempt (adversary round 41: "Observation, denied" named neither).
                    # Only when refused: the request's other entries name their own.
                    attempt.resource_type = operation.resource_type.name
                    attempt.resource_id = operation.resource_id
                    attempt.patient_pseudonym = (stored or head).patient_pseudonym
                    raise

            def judge(
                connection: Connection, operation: Operation, head: Head, stored: Head | None
            ) -> None:
                facts = (
                    caller,
                    connection,
                    operation,
                    head,
                    stored,
                    seen.get(id(operation)),
                    locked,
                    sent.get(id(operation)),
                )
                try:
                    _keep_owner(operation, head, stored)
                except AccessDenied:
                    self._refuse_as_if_kept(*facts)
                    raise
                decision = self._authorize_write(*facts)
                if decision is not None:
                    decisions[id(operation)] = decision
                self._refuse_changed_meanwhile(
                    caller, connection, operation, stored, kept.get(id(operation))
                )
                if isinstance(operation, Put) and operation.unless_held:
                    self._refuse_matched_meanwhile(caller, connection, operation)
                # After the write is allowed: a caller who may not write it is refused as
                # such (403, denied in the ledger), whatever it sent.
                if id(operation) in erasing:
                    raise SubsetWouldErase(_erasing(operation, erasing[id(operation)]))
                if isinstance(operation, Put) and id(operation) in local:
                    _refuse_broken_references(
                        operation, sent[id(operation)], shown.get(id(operation))
                    )

            def after_write(connection: Connection, result: WriteResult) -> None:
                if deferred_care is None:
                    care_notes.append(self._derive_care(connection, caller, result, registered))

            # A bulk load's entries name a patient (or the directory), not the request's
            # first type: the attempt seen so, made once a request for each, rather than
            # every entry made and then copied (``replace``: 3 µs a record of a bulk load).
            load_attempts: dict[bool, _Attempt] = {}

            def load_event(
                pseudonym: str | None,
                patient_id: str | None,
                categories: frozenset[DataCategory],
                detail: dict[str, Any],
            ) -> AuditEvent:
                named = bool(pseudonym)
                seen_as = load_attempts.get(named)
                if seen_as is None:
                    seen_as = load_attempts[named] = replace(
                        attempt, resource_type="Patient" if named else None
                    )
                return self._event(
                    seen_as,
                    Outcome.SUCCESS,
                    pseudonym=pseudonym,
                    categories=categories,
                    resource_id=patient_id,
                    reason="system",
                    detail=detail,
                )

            def before_commit(connection: Connection, results: list[WriteResult]) -> None:
                # Which rooms and roles placing the system's records staff or apps wrote:
                # read once for the request (a load's bookings name a few rooms, many
                # times), and only for the system, whose writes they judge.
                chosen = (
                    written_by_others(
                        connection, {result.placed_by for result in results if result.placed_by}
                    )
                    if caller.actor is None
                    else frozenset()
                )
                if deferred_care is not None and self.access is not None:
                    care_notes.extend(
                        self._derive_all_care(
                            connection,
                            caller,
                            results,
                            registered,
                            deferred_care,
                            [op.derived if isinstance(op, Put) else None for op in prepared],
                            chosen,
                        )
                    )
                    self.access.care.add_rows(
                        connection, [row for rows in deferred_care.values() for row in rows]
                    )
                if caller.actor is None and self.access is not None:
                    # After the care derived: a visit of the batch naming the clinic
                    # itself registers the patient there first.
                    self._placed_where_registered(connection, results, registered, chosen)
                if within is not None:
                    within(connection)
                if per_patient:
                    self.audit.record(
                        patient_batch_events(prepared, results, care_notes, load_event), connection
                    )
                    return
                events = [
                    self._write_event(
                        attempt, operation, result, decisions.get(id(operation)), note
                    )
                    for operation, result, note in zip(prepared, results, care_notes, strict=True)
                ]
                self.audit.record(events, connection)

            # A write that gives a Patient an HKID may be refused as another clinic's
            # patient's (``_refuse_someone_elses_hkid``): not while the account waits, and
            # each refusal counted as a failed registration, so probing is as slow as
            # fishing with registrations. A write that is not refused counts nothing.
            probing = self._identity_probe(
                caller, [(body, shown.get(key)) for key, body in sent.items()]
            )
            if probing is not None:
                probing[0].check(probing[1])
            try:
                results = apply_writes(
                    self.vault,
                    prepared,
                    principal=caller.principal,
                    purpose=caller.purpose,
                    before_commit=before_commit,
                    authorize=authorize,
                    after_write=after_write,
                    # The system's bulk load with no clinic locked: ``authorize`` and
                    # ``after_write`` read nothing back, and the care derived before the
                    # commit reads after the heads are in.
                    bulk=per_patient and deferred_care is not None,
                )
            except UnseenMatch:
                if probing is not None and count_probes:
                    probing[0].miss(probing[1])  # the transaction is gone: counted apart
                raise
        return [self._answer(caller, result) for result in results]

    def _identity_probe(
        self, caller: Caller, sent: Iterable[tuple[dict[str, Any], dict[str, Any] | None]]
    ) -> tuple[FailureCounter, str] | None:
        """The registration throttle and the account it counts, when a member of staff or
        a client sends a Patient with an HKID, or with a medical record number the record
        as the caller was shown it (``sent``'s second: ``_view_shown``, None where it could
        not read it) does not already carry; None otherwise. A desk reads record numbers,
        so every save of its view of a numbered patient carries one: counted, a desk held
        by the throttle after a few mistyped registrations could save no such patient
        (review of round 79). An HKID,
        which the desk may not read, counts whatever the record holds, or whether a save
        waited would tell it whether the number typed was the stored one."""
        if caller.actor is None or self.access is None:
            return None
        if not any(
            item.get("resourceType") == "Patient"
            and (
                hkid_terms(item)
                or set(mrn_terms(item)) - set(mrn_terms(stored) if stored is not None else ())
            )
            for item, stored in sent
        ):
            return None
        actor = caller.actor
        return self.access.registrations.failures, fisher(
            actor.account_id, actor.practitioner_id, caller.principal
        )

    def _answer(self, caller: Caller, result: WriteResult) -> WriteResult:
        """A written version as its writer may be shown it: cut to what they may read,
        as a read would cut it. The stored version keeps what they could not see (kept
        from the version before, or sent blind); the answer to the write must not hand
        it back (a front desk updating a phone number does not get the HKID)."""
        if caller.actor is None or result.body is None:
            return result
        rt = RESOURCE_TYPES[result.head.resource_type]
        try:
            self._scope(caller, rt, Interaction.READ)
            decision = self._decide_read(caller, rt, result.head)
        except (AccessDenied, ContainmentActive):
            return replace(result, body=None)
        shown = self._visible(rt, Opened(result.head, result.body), decision)
        return replace(result, body=shown[0].body if shown is not None else None)

    def _authorize_write(
        self,
        caller: Caller,
        connection: Connection,
        operation: Operation,
        head: Head,
        stored: Head | None,
        seen: tuple[int, dict[str, Any]] | None,
        locked: frozenset[str],
        sent: dict[str, Any] | None = None,
    ) -> Decision | None:
        """The caller's write rights on the stored record AND on the new version: what is
        sent can never authorise a change to what is stored. None for the system.
        ``locked``: the clinics locked by containment when the request began. ``sent``:
        what a Put sent, before what the caller could not see was put back into it."""
        judged = [head] if stored is None or stored == head else [stored, head]
        actor = caller.actor
        if actor is None:
            self._refuse_locked(connection, judged, locked)
            return None
        rt = operation.resource_type
        if isinstance(operation, Delete):
            interaction = Interaction.DELETE
            if head.deleted:
                # Deleting a deletion changes nothing; to a caller a read would tell
                # nothing of the record, it answers as for an id never used (a 403 said
                # that the id had been a record, and whose clinic's).
                unknown = self._deleted(caller, rt, head, reading=connection)
                if isinstance(unknown, NotFound):
                    raise unknown
            # A version deleted stays in the history, under the same read decisions. A
            # record deleted already is deleted again by changing nothing (FHIR: 200 or
            # 204, not a refusal): judged as the type's own record, not as every
            # category it could ever have held, which few roles may write.
            categories: frozenset[DataCategory] | set[DataCategory] = (
                frozenset({rt.category})
                if head.deleted
                else self._deleted_categories(caller, connection, rt, stored)
            )
        else:
            # A deleted record written again is a create to the token's scopes, though
            # it is judged on what was stored as well (it stays that patient's record).
            fresh = stored is None or stored.deleted
            interaction = Interaction.CREATE if fresh else Interaction.UPDATE
            # Only what changes counts, judged against the version the caller was shown;
            # if another write came between, the whole new version counts.
            if stored is not None and seen is not None and seen[0] == stored.version_id:
                categories = changed_categories(rt, operation.resource, seen[1])
            else:
                categories = element_categories(rt, operation.resource)
            moved = stored is None or stored.clinic_id != head.clinic_id
            if (
                head.patient_pseudonym is not None
                and moved
                and not may_place(actor, head.clinic_id)
            ):
                raise AccessDenied("a patient's record can be placed only at your clinics")
            self._refuse_placed_elsewhere(caller, connection, operation, head)
            self._refuse_claimed(caller, connection, rt, head, stored)
        self._scope(caller, rt, interaction)
        if rt.name == "Organization" and actor.role not in CLINIC_RECORD_WRITERS and self.access:
            clinics = self.access.known_clinics()
            if any(item.resource_id in clinics for item in judged):
                raise AccessDenied(
                    "a clinic's own record (its Organization) is kept by the system or the "
                    "directory's integration, not changed by staff"
                )
        decision: Decision | None = None
        for item in judged:
            target = self._directory_target(
                caller,
                connection,
                rt,
                item,
                operation.resource if isinstance(operation, Put) and item is head else None,
            )
            asked = _sent_unseen(actor, rt, sent, target, categories)
            verdict = decide(actor, Right.WRITE, asked, target)
            if not verdict.allowed:
                if stored is not None and not stored.deleted and self._hidden(caller, rt, stored):
                    raise self._refused_unseen(caller, connection, operation, head, sent)
                if item is head:
                    raise AccessDenied(verdict.reason)
                raise AccessDenied(_told_of_stored(actor, rt, sent, target, asked, verdict))
            decision = decision or verdict
        # Asked once the policy lets the caller change the record, as a read asks
        # (``_contain_read``): asked first, a DELETE or PUT told other clinics' staff,
        # whom the policy refuses, which ids were the locked clinic's (503 for those,
        # 403 for any other clinic's: the review of adversary round 72).
        self._refuse_locked(connection, judged, locked)
        if isinstance(operation, Put):
            # Once the caller may change the stored record: the clinic it is judged
            # against may be the stored one (an update naming an outside provider keeps
            # where the record is), which its words name (adversary round 64: Tuen Mun's
            # desk, refused a read of a visit, learnt that it was Tsuen Wan's from "does
            # not work at clinic-tw").
            self._refuse_named_elsewhere(operation, head)
        self._refuse_moved_from_afar(actor, connection, operation, head, stored)
        if rt.name == "Patient" and sent is not None:
            self._refuse_someone_elses_hkid(caller, connection, rt, sent, stored)
        if isinstance(operation, Put):
            self._refuse_writing_elsewhere(actor, connection, rt, head, stored)
        else:
            self._refuse_deleted_from_afar(actor, connection, rt, stored)
        return decision

    def _refuse_locked(
        self, connection: Connection, judged: Sequence[Head], locked: frozenset[str]
    ) -> None:
        """Refuse (503) a write of a record that belongs to a clinic ``locked``."""
        if locked and self.access is not None:
            for item in judged:
                if self.access.clinics_of(item, connection) & locked:
                    raise ContainmentActive(CLINIC_LOCKED)

    def _refuse_deleted_from_afar(
        self, actor: Actor, connection: Connection, rt: ResourceType, stored: Head | None
    ) -> None:
        """A deletion of a patient's record by a caller allowed to change it, who works
        at none of the clinics it belongs to (its clinic, its patient's registrations):
        refused (``domain.policy.may_delete``). Judged once the write is allowed, so only a
        caller who may read the record is told why."""
        if (
            self.access is None
            or stored is None
            or stored.deleted
            or stored.patient_pseudonym is None
        ):
            return
        if not may_delete(actor, self.access.clinics_of(stored, connection)):
            raise AccessDenied(
                f"{rt.name}/{stored.resource_id} belongs to clinics where you do not work: "
                "your care of the patient lets you read and change it, not delete it; ask "
                "the patient's clinic"
            )

    def _refuse_writing_elsewhere(
        self,
        actor: Actor,
        connection: Connection,
        rt: ResourceType,
        head: Head,
        stored: Head | None,
    ) -> None:
        """An update (or a deleted record written again) by a caller allowed to change
        it, of a patient's record placed at a clinic that is not the caller's and where
        the patient is not registered: refused (``domain.policy.writes_elsewhere``).
        Judged once the write is allowed, so the refusal tells only a caller who may
        read the record what it says; a new record is placed at the caller's own clinics
        (``may_place``). A Patient is placed at their home clinic, where they are
        registered."""
        if (
            self.access is None
            or stored is None
            or head.patient_pseudonym is None
            or rt.name == "Patient"
            # Most updates are at the caller's own clinics: no registration to read.
            or not outside_own_clinics(actor, head.clinic_id)
        ):
            return
        registered = self.access.registrations.clinics(head.patient_pseudonym, connection)
        if writes_elsewhere(actor, head.clinic_id, registered):
            raise AccessDenied(
                f"{rt.name}/{head.resource_id} is placed at another clinic, where the patient "
                "is not registered: that clinic's staff would read what you write. Delete "
                "it, or ask that clinic to change it"
            )

    def _refuse_moved_from_afar(
        self,
        actor: Actor,
        connection: Connection,
        operation: Operation,
        head: Head,
        stored: Head | None,
    ) -> None:
        """A member of staff's update places a patient's record at a clinic it did not
        belong to only if it belonged to one of theirs (``domain.policy.may_move``): a
        clinician whose right to change it is theirs alone (a referral, a grant) does not
        move it into their clinic's view. Judged once the write is allowed on the stored
        record, so only a caller who may change it (and so read it) is told; a deleted
        version is judged as a live one, since writing it again keeps its patient."""
        if (
            self.access is None
            or stored is None
            or not isinstance(operation, Put)
            or operation.resource_type.is_patient
            or head.patient_pseudonym is None
            or stored.clinic_id == head.clinic_id
        ):
            return
        belonged_to = self.access.clinics_of(stored, connection)
        if not may_move(actor, belonged_to, head.clinic_id):
            raise AccessDenied(
                f"{operation.resource_type.name}/{operation.resource_id} belongs to a "
                "clinic where you do not work: you may change it, but moving it to your "
                "clinic would open it to all your clinic's staff; write a record of your own"
            )

    def _refuse_as_if_kept(
        self,
        caller: Caller,
        connection: Connection,
        operation: Operation,
        head: Head,
        stored: Head | None,
        seen: tuple[int, dict[str, Any]] | None,
        locked: frozenset[str],
        sent: dict[str, Any] | None,
    ) -> None:
        """Before an update that moves a record to another patient (or a patient to
        another clinic) is refused as such: the refusal a caller who may not change the
        stored record gets instead, which must not depend on whose the record is. Its
        words told whose it was (adversary round 52: a doctor refused a read of another
        clinic's observation sent it back naming a candidate patient, and "cannot move
        a record to another patient" or not answered whether it was theirs); a record
        deleted or withheld whole, which a read answers as an id never used, was told
        to be one. Refused as an id never used is (``_refused_unseen``: on what is sent
        only) where the caller may not know of the record, else as the same update
        keeping the record's patient and clinic is (judged on the stored record first).
        Returns only if the caller may change the stored record: then told as before."""
        if stored is None or caller.actor is None or not isinstance(operation, Put):
            return
        rt = operation.resource_type
        if (
            isinstance(self._deleted(caller, rt, stored, reading=connection), NotFound)
            if stored.deleted
            else self._hidden(caller, rt, stored)
        ):
            raise self._refused_unseen(caller, connection, operation, head, sent)
        kept = replace(
            head,
            patient_pseudonym=stored.patient_pseudonym,
            clinic_id=stored.clinic_id if rt.is_patient else head.clinic_id,
        )
        self._authorize_write(caller, connection, operation, kept, stored, seen, locked, sent)

    def _directory_target(
        self,
        caller: Caller,
        connection: Connection,
        rt: ResourceType,
        head: Head,
        resource: dict[str, Any] | None,
    ) -> Target:
        """The policy's facts about ``head`` for a write, a directory record that names no
        clinic but one of the group's practitioners (a Schedule whose actor is a doctor,
        the doctor's PractitionerRole, that Schedule's Slots) given to the clinics where
        the practitioner works: docs/care-relationships.md keeps such records to their
        clinics' staff, and such a record's head names no clinic (a practitioner is
        where they work, not one clinic). ``resource``: the version being written; None:
        the stored one, opened."""
        target = self._target(caller, head, connection)
        if (
            target.patient_pseudonym is not None
            or target.orphan
            or target.clinic_ids
            or rt.name not in _STAFF_PATHS
            or head.deleted
        ):
            return target
        if resource is None:
            resource = self._stored_directory(caller, connection, rt.name, head)
        clinics = self._staff_clinics(caller, connection, rt.name, resource)
        return replace(target, clinic_ids=clinics) if clinics else target

    def _stored_directory(
        self, caller: Caller, connection: Connection, resource_type: str, head: Head
    ) -> dict[str, Any] | None:
        """The stored version of a directory record as ``head`` names it; None if it has
        moved on or is gone (then judged as a record of no clinic)."""
        located = self._current_record(connection, resource_type, head.resource_id)
        if located is None or located.head.version_id != head.version_id:
            return None
        return self._inspected(caller, located)

    def _current_record(
        self, connection: Connection, resource_type: str, resource_id: str
    ) -> Sealed | None:
        """The current version of a record, inside the write; None if none or deleted."""
        try:
            located = self.vault.locate(resource_type, resource_id, reading=connection)
        except NotFound:
            return None
        return None if located.head.deleted else located

    def _inspected(self, caller: Caller, located: Sealed) -> dict[str, Any] | None:
        """A directory record opened (and counted against the caller's budget), read only
        for its references."""
        [opened] = self._open(caller, [located])
        return jsonio.inspect(opened.body) if opened.body is not None else None

    def _staff_clinics(
        self,
        caller: Caller,
        connection: Connection,
        resource_type: str,
        resource: dict[str, Any] | None,
        *,
        through: bool = True,
    ) -> frozenset[str]:
        """The clinics where the practitioners a directory record names work; for a Slot,
        those of its Schedule (``through``: one step, a Schedule names no Slot)."""
        assert self.access is not None  # noqa: S101 - only asked with an access service
        if not isinstance(resource, dict):
            return frozenset()
        clinics: set[str] = set()
        for target_type, target_id in reference_targets(resource, _STAFF_PATHS[resource_type]):
            if target_type == "Practitioner":
                clinics |= self.access.practitioner_clinics(target_id)
            elif target_type == "Schedule" and through:
                schedule = self._current_record(connection, "Schedule", target_id)
                if schedule is None:
                    continue
                if schedule.head.clinic_id:
                    clinics.add(schedule.head.clinic_id)
                    continue
                named = self._inspected(caller, schedule)
                clinics |= self._staff_clinics(caller, connection, "Schedule", named, through=False)
        return frozenset(clinics)

    def _refuse_someone_elses_hkid(
        self,
        caller: Caller,
        connection: Connection,
        rt: ResourceType,
        sent: dict[str, Any],
        stored: Head | None,
    ) -> None:
        """A Patient written by staff or a client with an HKID that another Patient record
        of the group holds, one the caller may not read: UnseenMatch (409), as a
        conditional create that matched it is, and counted by ``_write`` as a failed
        registration. A second record of another clinic's patient split their history,
        made every ``$register`` of them ambiguous (409 at every clinic until an officer
        merged them) and served as a decoy to fish for their birth date; the clinic's
        desk registers a patient who attends with ``Patient/$register``. An HKID the
        record already carried, or one held only by records the caller may read, is the
        clinic's own business (it sees both). A medical record number, the other proof
        ``$register`` takes, is judged alike (adversary round 79: a desk's decoy with
        another clinic's patient's number made every registration by it a 409)."""
        terms = proof_terms(sent)
        if not terms:
            return
        tokens = {self.vault.token(rt.name, "identifier", term) for term in terms}
        # One writer of HKIDs at a time, until it commits: on PostgreSQL two clinics'
        # desks writing one person at once each looked for a holder before the other had
        # committed, and both wrote (adversary round 66). One lock for every HKID, not
        # one per number: a Bundle of hundreds of patients would hold hundreds of locks
        # (PostgreSQL's lock table is shared and bounded), taken in the Bundle's order
        # (two Bundles could wait for each other). Staff and clients write patients a
        # few at a time; the loads of the system and of imports do not come here.
        lock_until_commit(connection, "carevault-hkid-writes")
        own = stored.row_id if stored is not None and not stored.deleted else None
        for holders in self.vault.holding(connection, rt.name, tokens).values():
            if own is not None and any(head.row_id == own for head in holders):
                continue
            for head in holders:
                try:
                    self._decide_read(caller, rt, head, reading=connection)
                except (AccessDenied, ContainmentActive):
                    # A holder at a clinic locked by containment is one the caller may
                    # not read now: refused and counted alike (a 503 naming the lock
                    # would be an answer the throttle never counts).
                    raise UnseenMatch(
                        "another clinic's patient record holds this HKID or medical "
                        "record number; register the patient at your clinic with "
                        "Patient/$register (identifier and birth date) instead of writing "
                        "a second record",
                        holder=head.patient_pseudonym,
                    ) from None

    def _deleted_categories(
        self, caller: Caller, connection: Connection, rt: ResourceType, stored: Head | None
    ) -> frozenset[DataCategory] | set[DataCategory]:
        """What a DELETE removes: the categories the stored record holds (a booking with
        no reason is visit data, one with a diagnosis clinical), so that a front desk
        cancels its own bookings but no one deletes what they may not write. The record
        is opened only once the caller may write its kind of record for that patient at
        all; otherwise, or with nothing stored, what the type's own elements may hold
        (and the refusal follows). A record refused for what it holds that the caller
        may not read is refused as holding every category its type may: the refusal
        names nothing of it."""
        actor = caller.actor
        if actor is None or stored is None or stored.deleted:
            return own_categories(rt)
        target = self._target(caller, stored, connection)
        if not decide(actor, Right.WRITE, {rt.category}, target).allowed:
            return own_categories(rt)
        [opened] = self._open(caller, [self.vault.locate(rt.name, stored.resource_id)])
        if opened.body is None or opened.head.version_id != stored.version_id:
            return own_categories(rt)  # changed meanwhile: judged on what it may hold
        present = element_categories(rt, jsonio.load(opened.body))
        if (
            not decide(actor, Right.WRITE, present, target).allowed
            and decide(actor, Right.READ, present, target).withheld
        ):
            # Refused on what the caller may not read, the refusal would name it: billing
            # told "may not write sensitive_clinical" learns that a claim's hidden line
            # bills an HIV test. Refused all the same, in the words of everything the
            # type may hold, whatever the record holds.
            return possible_categories(rt)
        return present

    def _hidden(self, caller: Caller, rt: ResourceType, head: Head) -> bool:
        """Whether a read of the record ``head`` answers the caller "not known": its type
        and patient are the caller's to read, but the record is withheld as a whole (a
        sensitive record for a pharmacist). Opens the record: asked only of a refusal."""
        try:
            self._scope(caller, rt, Interaction.READ)
            decision = self._decide_read(caller, rt, head)
        except (AccessDenied, ContainmentActive):
            return False
        [opened] = self._open(caller, [self.vault.locate(rt.name, head.resource_id)])
        return self._visible(rt, opened, decision) is None

    def _refused_unseen(
        self,
        caller: Caller,
        connection: Connection,
        operation: Operation,
        head: Head,
        sent: dict[str, Any] | None,
    ) -> Exception:
        """The refusal of a write of a record the caller is told does not exist: a
        DELETE answers as for an absent record, and a PUT's reason names only what was
        sent, as a new record's would, never what the hidden one holds (a pharmacist
        must not learn that the Condition behind a reference is an HIV diagnosis)."""
        rt = operation.resource_type
        if isinstance(operation, Delete) or sent is None:
            return not_known(rt.name, operation.resource_id)
        assert caller.actor is not None  # noqa: S101 - only staff are refused
        verdict = decide(
            caller.actor,
            Right.WRITE,
            element_categories(rt, sent),
            self._target(caller, head, connection),
        )
        if not verdict.allowed:
            return AccessDenied(verdict.reason)
        if operation.if_match is not None:
            # What an absent id answers once what is sent may be written: no version is
            # current (412). A probe that writes nothing must not tell the two apart.
            return version_conflict(rt.name, operation.resource_id, operation.if_match)
        return AccessDenied("this record cannot be changed by you")

    def _refuse_named_elsewhere(self, operation: Put, head: Head) -> None:
        """A member of staff's visit or appointment names only practitioners of its own
        clinic (``domain.care.named_elsewhere``); judged on what is written, so an update
        that adds another clinic's doctor is refused as a create would be."""
        rt = operation.resource_type
        if self.access is None or head.patient_pseudonym is None or rt.name not in CARE_TYPES:
            return
        event = care_event(rt.name, operation.resource, head.clinic_id, self.care.zone)
        if event is None:
            return
        works_at = {
            practitioner: self.access.practitioner_clinics(practitioner)
            for practitioner in event.practitioner_ids
        }
        elsewhere = named_elsewhere(event, works_at)
        if elsewhere:
            raise AccessDenied(
                f"{rt.name} names Practitioner/{elsewhere[0]}, who does not work at "
                f"{event.clinic_id}: a treating clinician refers the patient to another "
                "clinic's practitioner with a ServiceRequest"
            )

    def _refuse_placed_elsewhere(
        self, caller: Caller, connection: Connection, operation: Put, head: Head
    ) -> None:
        """A directory record placed at a clinic of the group (a PractitionerRole, a
        Schedule) names only practitioners of the group who work there
        (``domain.policy.placed_elsewhere``); judged on what is written, so an update
        that adds another clinic's doctor is refused as a create would be. A Schedule
        names a doctor through their PractitionerRole as well as directly: the role's
        practitioner counts as named."""
        rt = operation.resource_type
        if (
            self.access is None
            or caller.actor is None
            or head.patient_pseudonym is not None
            or head.clinic_id is None
            or rt.name not in _PRACTITIONER_PATHS
            or head.clinic_id not in self.access.known_clinics()
        ):
            return
        named: list[str] = []
        for target_type, target_id in reference_targets(
            operation.resource, _PRACTITIONER_PATHS[rt.name]
        ):
            if target_type == "Practitioner":
                named.append(target_id)
            elif target_type == "PractitionerRole":
                role = self._current_record(connection, target_type, target_id)
                body = self._inspected(caller, role) if role is not None else None
                named += [
                    practitioner
                    for kind, practitioner in reference_targets(body or {}, ("practitioner",))
                    if kind == "Practitioner"
                ]
        works_at = {
            practitioner: self.access.practitioner_clinics(practitioner) for practitioner in named
        }
        elsewhere = placed_elsewhere(caller.actor, head.clinic_id, works_at)
        if elsewhere:
            # The id is one of the group's practitioners (it has clinics): not text sent.
            raise AccessDenied(
                f"{rt.name} names Practitioner/{elsewhere[0]}, who does not work at "
                f"{head.clinic_id}: the clinics where a practitioner works are those of "
                "their staff account"
            )

    def _refuse_claimed(
        self,
        caller: Caller,
        connection: Connection,
        rt: ResourceType,
        head: Head,
        stored: Head | None,
    ) -> None:
        """A member of staff's update never places a directory record at a clinic of the
        group it was not at (``domain.policy.claims_directory``): judged on the clinics
        the stored version belonged to (a deleted one's too: deleting and writing it
        again claims it as well), so a ward no clinic holds stays so, and a room stays
        at its clinic, until the system or the directory's integration app moves it."""
        if (
            self.access is None
            or caller.actor is None
            or stored is None
            or rt.is_patient_data
            or head.patient_pseudonym is not None
            or stored.clinic_id == head.clinic_id
        ):
            return
        before = self._directory_target(caller, connection, rt, stored, None).clinic_ids
        if claims_directory(caller.actor, before, head.clinic_id, self.access.known_clinics()):
            raise AccessDenied(
                f"{rt.name}/{head.resource_id} is not at {head.clinic_id}: a directory "
                "record is placed at another clinic than its own by the system or the "
                "directory's integration app, not by staff"
            )

    def _prepare(self, caller: Caller, operation: Operation) -> _Prepared:
        """Fill in what a staff member would expect, and keep what they could not see.

        Returns the operation to apply; for an update of a record the staff member may
        read, the version they were shown and its resource (so the policy judges only
        what the update changes); for an update labelled SUBSETTED (a view saved
        back), the elements of the caller's view of the record it leaves out, which it
        would erase, or None if the caller could not have read the record (``_left_out``).
        Either is refused once the write itself is allowed (``SubsetWouldErase``). And
        for an update into which what the caller may not see was put back, from which
        version (``_refuse_changed_meanwhile``).
        """
        if caller.actor is None or not isinstance(operation, Put):
            return _Prepared(operation)
        # What a client saves back is often what it read: the label of its view (which
        # may have left elements out) is not the record's.
        resource = without_subsetted(operation.resource)
        labelled = resource is not operation.resource
        refers = contained.may_refer_locally(resource)
        rt = operation.resource_type
        current: Sealed | None = None
        if not operation.fresh:
            try:
                current = self.vault.locate(rt.name, operation.resource_id)
            except NotFound:
                current = None
            if current is not None and current.head.deleted:
                current = None
        if rt.is_patient and "managingOrganization" not in resource:
            # An update keeps the home clinic; a new patient is registered where the
            # caller works, if that is one clinic.
            clinic = (
                current.head.clinic_id
                if current is not None
                else next(iter(caller.actor.clinic_ids))
                if len(caller.actor.clinic_ids) == 1
                else None
            )
            if clinic:
                resource = {
                    **resource,
                    "managingOrganization": {"reference": f"Organization/{clinic}"},
                }
            elif current is None:
                # A patient of no clinic would be no clinic's: name the field to set.
                raise ClinicRequired(
                    "Patient.managingOrganization: set it to the clinic where the patient "
                    "is registered (you work at more than one clinic)"
                )
        placed = self._place_outside(caller.actor, rt, resource, current)
        existing: tuple[int, dict[str, Any]] | None = None
        shown: dict[str, Any] | None = None
        kept: _Kept | None = None
        left_out: tuple[str, ...] | None = () if current is None or not labelled else None
        if current is not None:
            decision = decide(
                caller.actor,
                Right.READ,
                possible_categories(rt),
                self._target(caller, current.head),
            )
            if decision.allowed:
                [opened] = self._open(caller, [current])
                parsed = jsonio.load(opened.body or b"{}")
                existing = (current.head.version_id, parsed)
                if labelled or refers or mrn_terms(resource):
                    shown = self._view_shown(caller, rt, current.head, parsed)
                if labelled:
                    left_out = self._left_out(shown, resource)
                if decision.withheld:
                    kept = _Kept(current.head.version_id, resource, decision.granted)
                    try:
                        resource = restore_withheld(rt, resource, parsed, decision.granted)
                    except HiddenItemNamed as error:
                        raise AccessDenied(str(error)) from None
        _name_the_patient(rt, resource)
        prepared = replace(operation, resource=resource, clinic_id=placed)
        return _Prepared(prepared, existing, left_out, kept, shown, refers)

    def _refuse_matched_meanwhile(
        self, caller: Caller, connection: Connection, operation: Put
    ) -> None:
        """A conditional create (``Put.unless_held``) refused if a record of its type that
        the caller may read now holds every token of its identifier: its search found
        none, and another request wrote one since. Conditional creates of a type take a
        lock until they commit, so that of two sent at once the second looks once the
        first is committed (PostgreSQL; SQLite's write lock orders every writer already).
        Judged once the write is allowed, before the record is written. A holder the
        caller may not read is left to the rules that judge such a match
        (``_refuse_someone_elses_hkid``): its existence is not told here."""
        rt = operation.resource_type
        lock_until_commit(connection, f"carevault-conditional-create:{rt.name}")
        holding = self.vault.holding(connection, rt.name, operation.unless_held)
        rows = [{head.row_id for head in holding.get(token, [])} for token in operation.unless_held]
        matched = set.intersection(*rows) if rows else set()
        heads = {head.row_id: head for held in holding.values() for head in held}
        for row_id in sorted(matched):
            try:
                self._decide_read(caller, rt, heads[row_id], reading=connection)
            except (AccessDenied, ContainmentActive):
                continue
            raise MatchedMeanwhile(
                f"a {rt.name} matching the conditional criteria (If-None-Exist, or a "
                "conditional update's) was written by another request meanwhile; send "
                "the request again: it finds that record"
            )

    def _refuse_changed_meanwhile(
        self,
        caller: Caller,
        connection: Connection,
        operation: Operation,
        stored: Head | None,
        kept: _Kept | None,
    ) -> None:
        """ChangedMeanwhile if what ``_prepare`` put back into an update (what the caller
        may not see) is not what the version it replaces holds: that version came after
        the one read (another writer's, or an earlier entry of the same Bundle). Put back
        from the version it replaces, the update must be what it is, or the caller would
        revert what it was never shown. A change the caller could see is overwritten, as
        any update without If-Match overwrites."""
        if kept is None or stored is None or stored.version_id == kept.version_id:
            return
        assert isinstance(operation, Put)  # noqa: S101 - only an update keeps anything
        rt = operation.resource_type
        changed = ChangedMeanwhile(
            f"{rt.name}/{operation.resource_id} changed while your update was being made: "
            "read it again and send your change"
        )
        located = self._current_record(connection, rt.name, operation.resource_id)
        if located is None or located.head.version_id != stored.version_id:
            raise changed  # deleted meanwhile
        [opened] = self._open(caller, [located])
        try:
            again = restore_withheld(rt, kept.sent, jsonio.load(opened.body or b"{}"), kept.granted)
        except HiddenItemNamed:
            raise changed from None
        if again != operation.resource:
            raise changed

    def _view_shown(
        self, caller: Caller, rt: ResourceType, head: Head, stored: dict[str, Any]
    ) -> dict[str, Any] | None:
        """``stored`` as a read would show it the caller, or None if the caller could not
        have read the record (its role, its token's scopes or patient in context,
        containment, or the record's sensitivity): what an update is told by, or judged
        against, of the version it replaces, which a write-only token must learn nothing
        of (the second review of stop 61)."""
        try:
            self._scope(caller, rt, Interaction.READ)
            decision = self._decide_read(caller, rt, head)
        except (AccessDenied, ContainmentActive):
            return None
        return subset(rt, stored, decision.granted)

    @staticmethod
    def _left_out(view: dict[str, Any] | None, sent: dict[str, Any]) -> tuple[str, ...] | None:
        """The top-level elements of the caller's view of the stored record (``view``, as a
        read would show it them: ``_view_shown``) that ``sent``, an update labelled
        SUBSETTED, leaves out; None if the caller could not have read the record, to whom
        the names would tell what it holds.

        A PUT replaces the record: a view of ``_summary=true`` or ``_elements`` saved back
        as it came would erase every element it did not show. The role's own cut does
        not: what it withholds is put back from the stored record (``restore_withheld``),
        and what it shows the caller sends back. Compared with that view, not with the
        record: the narrative the cut removes is not asked for, and an element of which
        the role sees only a part (a patient's identifiers without the HKID) is asked for
        as the role sees it. ``sent`` is taken before anything is put back into it."""
        if view is None:
            return None
        return tuple(
            sorted(
                name
                for name in view
                if name not in ("resourceType", "id", "meta") and name not in sent
            )
        )

    def _place_outside(
        self, actor: Actor, rt: ResourceType, resource: dict[str, Any], current: Sealed | None
    ) -> str | None:
        """Where a patient record goes when it names an outside organization (one no
        one here works at, such as the hospital of an imported history) as its clinic:
        where the caller works, if that is one clinic. The body keeps the reference as
        sent; the record is placed, for access, at the caller's clinic. A clinic of the
        group that is not the caller's is left to the placement rule (403), as before.
        None: derived from the references, as for any record."""
        if (
            self.access is None
            or rt.is_patient
            or not rt.is_patient_data
            or actor.role in GROUP_WIDE
        ):
            return None
        for path in rt.clinic_paths:
            targets = reference_targets(resource, (path,))
            if not targets:
                continue
            target_type, target_id = targets[0]
            if target_type != "Organization" or target_id in actor.clinic_ids:
                return None
            if target_id in self.access.known_clinics():
                return None
            if current is not None:
                return current.head.clinic_id  # an update keeps where the record is
            if len(actor.clinic_ids) == 1:
                return next(iter(actor.clinic_ids))
            raise ClinicRequired(
                f"{rt.name}.{path} names Organization/{target_id}, which is not a clinic of "
                "this group: write with an account or app of one clinic, or name your clinic"
            )
        return None

    def _placed_where_registered(
        self,
        connection: Connection,
        results: list[WriteResult],
        registered: dict[str, frozenset[str]],
        chosen: Collection[tuple[str, str]],
    ) -> None:
        """The system's load writes a patient's record at a clinic named only by a room or
        a role a member of staff or a client app wrote (``WriteResult.placed_by``,
        ``directory_written``) only where the patient is registered.

        A room or role is named by an id anyone of its clinic may have written first: a
        desk that made ``ward-m`` at its clinic before a migration naming Tsuen Wan's
        ``ward-m`` had the migration's visits of Tsuen Wan's patients placed at its own
        clinic, and read them (adversary round 62, a strict xfail until stop 55). Such a
        record is refused (``AccessDenied``: the load refuses its line, with this reason,
        and the records naming it); a record that names its clinic itself
        (``serviceProvider``) is placed there as before, and registers its patient.
        Registrations this transaction made count (a Patient line of the same batch, a
        visit naming the clinic itself): the heads are in and the care derived before
        this runs. ``chosen``: the rooms and roles among those placing ``results`` that
        staff or apps wrote (``written_by_others``)."""
        assert self.access is not None  # noqa: S101 - called only with an access service
        placed = [
            result
            for result in results
            if result.placed_by is not None
            and result.head.patient_pseudonym is not None
            and result.head.clinic_id is not None
        ]
        if not placed:
            return
        # Only a room or role a member of staff or a client app wrote: the group's own
        # directory, as the system loaded it, places what it loads (a booking at another
        # clinic the patient never came to is still that clinic's).
        placed = [result for result in placed if result.placed_by in chosen]
        if not placed:
            return
        missing = {
            pseudonym
            for result in placed
            if (pseudonym := result.head.patient_pseudonym) is not None
            and pseudonym not in registered
        }
        registered.update(self.access.registrations.clinics_in(connection, missing))
        for result in placed:
            head = result.head
            assert head.patient_pseudonym is not None and result.placed_by is not None  # noqa: S101
            if head.clinic_id in registered[head.patient_pseudonym]:
                continue
            kind, ident = result.placed_by
            raise AccessDenied(
                f"{head.resource_type}/{head.resource_id} names its clinic only through "
                f"{kind}/{ident}, a clinic where its patient is not registered: name the "
                "clinic itself (a visit's serviceProvider, an organization)"
            )

    def _derive_all_care(
        self,
        connection: Connection,
        caller: Caller,
        results: list[WriteResult],
        registered: dict[str, frozenset[str]],
        deferred: dict[int, list[dict[str, Any]]],
        derived: Sequence[Derived | None],
        chosen: Collection[tuple[str, str]],
    ) -> list[dict[str, Any] | None]:
        """``_derive_care`` of every record of a request, in order, the registrations of
        its patients read together first. ``derived``: what each record's operation
        carries worked out already (the system's bulk load), by position; ``chosen``: as
        ``_derive_care`` takes it."""
        assert self.access is not None  # noqa: S101 - deferred only with an access service
        pseudonyms = {
            result.head.patient_pseudonym
            for result in results
            if result.head.resource_type in CARE_TYPES and result.head.patient_pseudonym
        }
        missing = [pseudonym for pseudonym in pseudonyms if pseudonym not in registered]
        registered.update(self.access.registrations.clinics_in(connection, missing))
        return [
            self._derive_care(connection, caller, result, registered, deferred, worked_out, chosen)
            for result, worked_out in zip(results, derived, strict=True)
        ]

    def _derive_care(
        self,
        connection: Connection,
        caller: Caller,
        result: WriteResult,
        registered: dict[str, frozenset[str]],
        deferred: dict[int, list[dict[str, Any]]] | None = None,
        derived: Derived | None = None,
        chosen: Collection[tuple[str, str]] | None = None,
    ) -> dict[str, Any] | None:
        """What a written record opens, under the rules of ``domain/care.py``; the note
        for its audit entry. ``registered``: the request's cache of registrations.
        ``deferred``: where the relationships' rows wait, by source row, to be inserted
        before the commit (None: inserted now, for the records after this one to see).
        ``derived``: what the system's own loader worked out from this very record
        (``fhir/derived.py``), its care among it; None: read from the record here.
        ``chosen``: the rooms and roles among those placing the request's records that
        staff or apps wrote (``written_by_others``; None: read here)."""
        head = result.head
        pseudonym = head.patient_pseudonym
        if self.access is None or head.resource_type not in CARE_TYPES or pseudonym is None:
            return None
        access = self.access
        # What this record opened before goes first: a record never vouches for its writer.
        # A first version is a row just inserted, which opened nothing yet.
        earlier = None
        if head.version_id != 1:
            earlier = access.care.clear(connection, head.row_id)
            if deferred is not None:
                deferred.pop(head.row_id, None)  # an earlier version in this same batch
        event = (
            None
            if result.resource is None or head.deleted
            else care_event(head.resource_type, result.resource, head.clinic_id, self.care.zone)
            if derived is None
            else None
            if derived.care is None
            else event_at(derived.care, head.clinic_id)
        )
        if event is None:
            return {"opens": [], "reason": "no relationship: the record opens none"}
        actor = caller.actor
        if (
            event.through_directory
            and actor is None
            and result.placed_by is not None
            and result.placed_by
            not in (written_by_others(connection, [result.placed_by]) if chosen is None else chosen)
        ):
            # The group's own directory, as the system loaded it, places what the system
            # loads and registers its patient there (``_placed_where_registered``): an
            # Appointment names its clinic only through a room or a role, and a migrated
            # schedule's bookings at another branch registered no one, so that branch's
            # nurses and doctors were refused the patients they saw (stop 64). Only a room
            # or role a member of staff or a client app wrote is held to the patient's
            # registrations (adversary round 62).
            event = replace(event, through_directory=False)
        now = access.now_us()
        standing = WriterStanding(
            system=actor is None,
            has_relationship=actor is not None
            and actor.role in CLINICIANS
            and access.care.exists(
                pseudonym, actor.clinic_ids, actor.practitioner_id, now, connection
            ),
            practitioner_id=actor.practitioner_id if actor else None,
            clinic_ids=actor.clinic_ids if actor else frozenset(),
        )
        if pseudonym not in registered:
            registered[pseudonym] = access.registrations.clinics(pseudonym, connection)
        works_at = (
            {}
            if actor is None
            else {
                practitioner: access.practitioner_clinics(practitioner)
                for practitioner in event.practitioner_ids
            }
        )
        # The group's clinics, for a member of staff's vouching only: what the system
        # loads is not judged by them (``grants``).
        group = (
            access.known_clinics()
            if actor is not None and event.source in VOUCHED
            else frozenset[str]()
        )
        granted = grants(
            event, registered[pseudonym], standing, now, self.care.window, works_at, group
        )
        if event.source in VOUCHED:
            # Remembered when the record ends: the doctor referred to may complete,
            # revoke or delete it, then register the patient with what it showed.
            access.care.vouched(connection, pseudonym, granted.windows, now)
        if granted.register is not None:
            access.registrations.register(
                connection,
                pseudonym,
                granted.register,
                by=caller.principal,
                proof=Proof.SYSTEM,
                now_us=now,
                known=registered[pseudonym] if deferred is not None else None,
            )
            registered[pseudonym] |= {granted.register}
        # Who alone made it: their own accesses are not explained by it (``made_by``).
        # Only what the version before opened around this version's date corroborates,
        # and only within that care's own window (``domain.care.attribute``).
        # A client app's writes are marked: only a person's word explains a VIP read
        # (``domain.makers``; adversary round 82).
        moment = event.starts_us if event.starts_us is not None else now
        writer = access.care.maker(caller.principal if actor else None)
        mine = frozenset[bytes]()
        if earlier and actor is not None and actor.practitioner_id:
            # Another login of the writer's own person corroborates nothing: it is them.
            mine = access.care.makers(connection, actor.practitioner_id)
        if deferred is not None:
            deferred[head.row_id] = access.care.rows(head.row_id, pseudonym, granted.windows)
        else:
            access.care.add_rows(
                connection,
                [
                    row
                    for window, maker in attribute_marked(
                        granted.windows,
                        writer,
                        earlier,
                        moment,
                        access.care.whom,
                        client=caller.principal.startswith("client:"),
                        mine=mine,
                    )
                    for row in access.care.rows(head.row_id, pseudonym, (window,), maker)
                ],
            )
        return {
            "opens": [_describe(window) for window in granted.windows],
            "reason": granted.reason,
            **({"registered": granted.register} if granted.register else {}),
        }

    def _write_event(
        self,
        attempt: _Attempt,
        operation: Operation,
        result: WriteResult,
        decision: Decision | None,
        care: dict[str, Any] | None,
    ) -> AuditEvent:
        rt = operation.resource_type
        if isinstance(operation, Delete):
            tag, categories = Tag.FHIR_DELETE, own_categories(rt)
        else:
            tag = Tag.FHIR_CREATE if result.created else Tag.FHIR_UPDATE
            categories = frozenset(element_categories(rt, operation.resource))
        detail: dict[str, Any] = {"version": result.head.version_id}
        if care is not None:
            detail["care"] = care
        return replace(
            self._event(
                attempt,
                Outcome.SUCCESS,
                pseudonym=result.head.patient_pseudonym,
                categories=categories,
                decision=decision,
                resource_id=result.head.resource_id,
                reason=decision.reason if decision else "system",
                detail=detail,
            ),
            tag=tag,
            resource_type=rt.name,
        )


#: Runs inside a write's transaction after the writes (a transaction Bundle's reads).
Within = Callable[[Connection], None]


def _refuse_broken_references(
    operation: Put, sent: dict[str, Any], replaced: dict[str, Any] | None
) -> None:
    """InvalidResource (400) if a local reference the caller sent names no resource
    contained in the record as it will be stored (R4 ref-1), what the caller was not
    shown put back (``_prepare``): a role's view leaves out the contained resources it may
    not see, and a view saved back refers to them until they are put back (integrator
    round 72 found dangling references stored, which every R4 validator rejects on read
    and export). Each is named by its place in what was sent. References in elements put
    back are not judged: which of them dangles would tell the caller what an element it
    may not see refers to (the review of stop 61: whether the desk's typed HKID was the
    stored one). ``replaced``: the caller's view of the version replaced (``_view_shown``);
    a reference that dangled there already, at the same place, is not refused (a record
    stored before this rule stays writable). Asked only of what may hold a local
    reference (``contained.may_refer_locally``): most writes hold none."""
    name = operation.resource_type.name
    tolerated = (
        ()
        if replaced is None
        else contained.dangling(replaced, name, contained.contained_ids(replaced))
    )
    issues = contained.check_references(
        sent, name, held=contained.contained_ids(operation.resource), tolerated=tolerated
    )
    if issues:
        raise InvalidResource(400, issues[:50])


def _name_the_patient(rt: ResourceType, resource: dict[str, Any]) -> None:
    """A patient's record (of any type but Patient) written by staff or a client names
    its patient as ``Patient/[id]``, and every reference at its patient elements that
    names or may name a Patient is relative: the vault finds whose record it is only so.
    A subject sent as an absolute URL, as ``type`` and id, by identifier, conditionally,
    contained or not at all would make it no one's record (sealed under the directory
    key, at no clinic), which every clinician of the group could read by id with no care
    relationship: refused. Other participants at an element of several (an
    Appointment's outside doctor given by name, identifier or another server's URL) are
    no patient and open nothing here (the vault follows relative references only)."""
    if rt.is_patient or not rt.is_patient_data:
        return
    named = False
    for path in rt.patient_paths:
        for value in values_at(resource, path):
            target = parse_reference(value)
            if target is not None:
                named = named or target[0] == "Patient"
            elif _may_name_a_patient(value, resource):
                raise PatientRequired(
                    f"{rt.name}.{path}: refer to a patient here as Patient/[id]; "
                    "absolute, logical, conditional and contained references to a patient "
                    "are not followed"
                )
    if not named:
        raise PatientRequired(
            f"{rt.name}.{rt.patient_paths[0]}: name the patient whose record this is, "
            "as Patient/[id]"
        )


#: How a token search for any value of a system (``identifier=<system>|``) begins, as a
#: term.
_SYSTEM_ONLY = system_only_term("")
_TYPE_NAME = re.compile(r"[A-Z][A-Za-z]{1,63}")


def _may_name_a_patient(value: Any, resource: dict[str, Any]) -> bool:
    """Whether a reference the vault does not follow (not ``[type]/[id]``) names, or may
    name, a Patient: typed Patient, a URL or condition with a Patient segment, a contained
    Patient (or a contained id not found), or a reference whose target type cannot be
    told. A participant by display or identifier only, not typed Patient, is not one."""
    if not isinstance(value, dict):
        return True
    kind = value.get("type")
    if kind == "Patient":
        return True
    reference = value.get("reference")
    if reference is None:
        return False
    if not isinstance(reference, str):
        return True
    if reference.startswith("#"):
        held = [
            each
            for each in resource.get("contained") or []
            if isinstance(each, dict) and each.get("id") == reference[1:]
        ]
        return not held or any(each.get("resourceType") == "Patient" for each in held)
    path, conditional, _ = reference.partition("?")
    parts = path.split("/")
    if "Patient" in parts:
        return True
    if conditional and len(parts) == 1 and _TYPE_NAME.fullmatch(parts[0]):
        return False  # a condition on another type (Practitioner?identifier=...)
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) >= 3 and parts[-1] and _TYPE_NAME.fullmatch(parts[-2]):
        return False  # another server's [base]/[type]/[id], not a Patient
    return not isinstance(kind, str)


def identifiers_seen(
    caller: Caller, query: SearchQuery, zone: tzinfo
) -> Callable[[Opened], bool] | None:
    """For a search by identifier of a role that may not read sensitive records: a filter
    that keeps a record only if an identifier its view shows matches (the review after
    round 47: a desk's reads cut a patient's HIV clinic number, typed with SNOMED's HIV
    disease, yet ``identifier=<that number>`` found the patient, telling the desk that
    this patient holds it). None when nothing needs filtering. Identifiers cut for
    another reason (an HKID from a desk) still find: a desk registers by HKID."""
    actor = caller.actor
    conditions = [term for term in query.terms if term.param.name == "identifier"]
    # Only a Patient's identifiers are cut item by item; any other record is searched in
    # SQL as before (a filter here opens every candidate, page after page).
    if actor is None or not conditions or not query.resource_type.is_patient:
        return None
    rights = RIGHTS[actor.role]
    if Right.READ in rights.get(DataCategory.SENSITIVE_CLINICAL, frozenset()):
        return None

    def seen(item: Opened) -> bool:
        resource = jsonio.load(item.body or b"{}")
        items = resource.get("identifier")
        if not isinstance(items, list) or not any(has_sensitive_code(i) for i in items):
            return True
        shown = {**resource, "identifier": [i for i in items if not has_sensitive_code(i)]}
        terms = {
            id(condition): param_terms(condition.param, shown, zone) for condition in conditions
        }
        return all(
            any(
                all(term in terms[id(condition)] for term in each)
                for each in condition.alternatives
            )
            for condition in conditions
        )

    return seen


def _both(
    first: Callable[[Opened], bool], second: Callable[[Opened], bool]
) -> Callable[[Opened], bool]:
    return lambda item: first(item) and second(item)


class _Prepared(NamedTuple):
    """What ``Gate._prepare`` makes of an operation: the operation to apply; for an update
    of a record the caller may read, the version it replaces (its number and resource:
    the policy judges only what the update changes); for a view saved back, the elements
    it would erase, or None if the caller could not have read the record; what was put
    back into it (``_Kept``); and the caller's view of the version it replaces, where it
    could read it and it matters (``Gate._view_shown``)."""

    operation: Operation
    existing: tuple[int, dict[str, Any]] | None = None
    left_out: tuple[str, ...] | None = ()
    kept: _Kept | None = None
    shown: dict[str, Any] | None = None
    #: Whether what was sent may hold a local reference (``contained.may_refer_locally``),
    #: where worked out already: each record is serialised for it once.
    refers: bool | None = None


class _PastPage:
    """Every record a search's ``total`` counts, looked up once and only if asked
    (unsorted; none is shown): whose they are where the count picks out people
    (``picks_out_people``, ``_names_one_by_one``; rounds 58-59), and their sensitivity
    markers where it picks records by a code or a text (``Gate._told_by_total``; round
    74). A count that needed both (``Observation?identifier=…&_summary=count``) once
    looked them up twice over, after the page."""

    def __init__(
        self,
        vault: Vault,
        caller: Caller,
        query: SearchQuery,
        restrict: Restriction,
        keep: Callable[[Opened], bool] | None,
        candidate_limit: int,
        total: int,
    ) -> None:
        self._vault, self._caller, self._query = vault, caller, query
        self._restrict, self._keep = restrict, keep
        self._candidate_limit, self._total = candidate_limit, total
        self._every: list[Sealed | Opened] | None = None

    def every(self) -> list[Sealed | Opened]:
        if self._every is None:
            self._every, _ = find(
                self._vault,
                replace(
                    self._query,
                    summary_count=False,
                    count=self._total,
                    offset=0,
                    after=None,
                    sort=[],
                ),
                principal=self._caller.principal,
                purpose=self._caller.purpose,
                restrict=self._restrict,
                candidate_limit=self._candidate_limit,
                keep=self._keep,
            )
        return self._every

    def patients(self) -> set[str]:
        """The pseudonyms of the patients whose records the total counts. Each is named
        in the ledger and counted by the release budget, as the page's patients are; the
        count itself is kept, which clinic apps ask for (fhirpy's ``count()``)."""
        return {p for item in self.every() if (p := item.head.patient_pseudonym) is not None}


def _names_one_by_one(caller: Caller, query: SearchQuery) -> bool:
    """Whether a member of staff's (or an app's) search names whom it finds one by one,
    so that which patients match is what its total tells (``_PastPage.patients``): a search
    whose count picks out people (``gate/counted.py``: a telephone number, an email
    address, a name and a birth date), or an identifier (one person's). Adversary round
    59: ``Patient?identifier=<an HKID>&_summary=count`` (or a list of a hundred) told a
    doctor or nurse, whose role reads government ids and so keeps ``total``, whether each
    number was a patient of theirs, with no patient named in the ledger and nothing spent
    from the release budget. A role that may not read government ids is shown no total
    of an identifier search (``withholds_counts``), so its total tells nothing to name."""
    if caller.actor is None:
        return False
    if picks_out_people(query):
        return True
    return not withholds_counts(caller, query) and any(
        term.param.name == "identifier" for term in query.terms
    )


def withholds_counts(caller: Caller, query: SearchQuery) -> bool:
    """Whether this search by ``caller`` may tell only what it shows: a search by
    identifier of a role that may not read government ids (round 42: billing checked
    HKIDs for membership from ``total``, naming no patient in the ledger and spending
    nothing from the release budget).

    Every response to such a search either names, in the ledger and against the release
    budget, the records whose existence it reveals, or reveals only that nothing (more)
    matches. So it has no ``total``; a count alone (``_summary=count``, ``_count=0``) is
    refused; its next link follows a full page, whether more match or not (its presence
    told, from the total, that one record more matched); and it pages only by offsets
    the server sealed once every record before them was shown to the caller
    (``rest/offsets.py``), never by positions of the caller's choosing. An empty page
    then says only that no more match, which concerns no patient: as the first page of
    a number that is no one's always did."""
    actor = caller.actor
    if actor is None:
        return False
    if Right.READ in RIGHTS[actor.role].get(DataCategory.GOVERNMENT_ID, frozenset()):
        return False
    return any(term.param.name == "identifier" for term in query.terms)


def _refuse_unreadable_criteria(caller: Caller, query: SearchQuery) -> None:
    """AccessDenied if the search matches or orders by an element of a category the
    caller's role may not read: which records match, and in what order, tells the values
    a read withholds (billing halving ``birthdate`` ranges learnt every birth date).

    ``identifier`` is left out: a front desk finds a patient by the HKID shown, which it
    registers but may not read back, and a privacy officer's console finds patients the
    same way; refused conditional creates count as failed registrations. But a role that
    may not read government ids searches one identifier at a time: with a list
    (``_id=X&identifier=a,b,c…``) halving the candidates would read off in log2(n)
    searches the HKID a read withholds."""
    actor = caller.actor
    if actor is None:
        return
    rt = query.resource_type
    rights = RIGHTS[actor.role]
    if Right.READ not in rights.get(DataCategory.GOVERNMENT_ID, frozenset()):
        for term in query.terms:
            if term.param.name != "identifier":
                continue
            if len(term.alternatives) > 1:
                raise AccessDenied(
                    f"{actor.role} may search by one identifier at a time: a list would tell "
                    "identifiers that role may not read"
                )
            if any(
                part.startswith(_SYSTEM_ONLY)
                and (rt.is_patient or is_government_system(part[len(_SYSTEM_ONLY) :]))
                for alt in term.alternatives
                for part in alt
            ):
                # ``identifier=<system>|``: which patients have an identifier of that system
                # on file. Under the HKID system, who has an HKID; but a patient's HKID is
                # stored under whatever system its source spelt (a legacy import's OID, the
                # HKID system in capitals) and reads withhold it by its shape, which a
                # search of the system alone cannot tell: for patients, any system alone
                # is refused (another type's identifiers are not told apart by their shape:
                # there only a government system alone is).
                raise AccessDenied(
                    f"{actor.role} may search an identifier only by its number: a system "
                    "alone would list who has a government identifier on file"
                )
    if withholds_counts(caller, query) and (
        query.summary_count
        or query.count == 0
        or (query.offset and not query.offset_issued)
        or query.after is not None
    ):
        # A total without the records it counts: whether a number is a patient's, told
        # with no patient named in the ledger and nothing from the release budget (a
        # leaked list of HKIDs checked against the group, unseen). So is a page at a
        # position the caller chose: entries at ``_offset=k`` say that k records before
        # them match, which no entry names. Such a search moves on by the server's own
        # links only (``offset_issued``), never by a cursor (``rest/offsets.py``): it is
        # given none, its offsets being issued only once every record before was shown.
        raise AccessDenied(
            f"{actor.role} searches by identifier for the records it matches: a count "
            "alone, or a page at a position not given by this server's links, would tell "
            "identifiers that role may not read"
        )
    if (
        rt.name in CODE_GUARDED_TYPES
        and Right.READ not in rights.get(DataCategory.SENSITIVE_CLINICAL, frozenset())
        and (asked := sensitive_code_param(rt, query)) is not None
    ):
        # A visit's, booking's, care team's, patient's, claim's or coverage's sensitive
        # codes are cut from what such a role reads (``categories.CODE_GUARDED_TYPES``),
        # and which visits match ``type=<an HIV care code>`` (claims ``code=``, coverages
        # ``type=HIVAIDS``) would tell it all the same. The answer depends only on the
        # code asked, never on what is stored.
        raise AccessDenied(
            f"{actor.role} may not search by '{asked}' for a sensitive code: that "
            "role may not read sensitive records"
        )
    searched = query_params(query)
    for key in query.sort:
        sorted_by = rt.param(key.name)
        if sorted_by is not None:
            searched.append(sorted_by)
    for param, category in searched_categories(rt, searched):
        if param.name != "identifier" and Right.READ not in rights.get(category, frozenset()):
            raise AccessDenied(
                f"{actor.role} may not search by '{param.name}': it reads {category}, "
                "which that role may not read"
            )


def _searched_contacts(query: SearchQuery) -> list[dict[str, str]]:
    """The phone numbers and email addresses a search runs on, as contact points: what
    the index is asked for (a number's digits only, backslash escapes dropped), which the
    raw values may spell otherwise (``x9123 4567``, ``9123\\4567``, ``kai\\@mail.hk``).
    The decoy watch is shown these too, so that no spelling that finds a decoy escapes."""
    found: list[dict[str, str]] = []
    for term in query.terms:
        system = term.param.telecom_system
        if system is None:
            continue
        for alternative in term.alternatives:
            found.extend(
                {"system": system, "value": part.removeprefix("any|")} for part in alternative
            )
    return found


def _sent_unseen(
    actor: Actor,
    rt: ResourceType,
    sent: dict[str, Any] | None,
    target: Target,
    categories: frozenset[DataCategory] | set[DataCategory],
) -> frozenset[DataCategory] | set[DataCategory]:
    """What a write is judged on: ``categories`` (what it changes) and those of every
    element ``sent`` holds that the caller may not read. Judged only on what changes, an
    update let a caller send an element it may not see (a visit's reason, to a front
    desk) and learn, from being allowed, that it was what the record holds."""
    if sent is None:
        return categories
    unseen = decide(actor, Right.READ, element_categories(rt, sent), target).withheld
    return categories | unseen if unseen - categories else categories


def _told_of_stored(
    actor: Actor,
    rt: ResourceType,
    sent: dict[str, Any] | None,
    target: Target,
    asked: frozenset[DataCategory] | set[DataCategory],
    verdict: Decision,
) -> str:
    """Why an update is refused on the stored record, in words that name no category of
    it the caller may not read: those it may read and those of what it sent. Judged on
    what it changes, an update is refused for every category the stored record holds
    (a restricted observation's sensitive_clinical), and the refusal named them: a front
    desk, who reads no observation, sent one back and learnt from "may not write
    sensitive_clinical" which of its patients' observations are restricted (adversary
    round 52), as a DELETE once told (``_deleted_categories``)."""
    readable = decide(actor, Right.READ, asked, target).granted
    if readable >= asked:
        return verdict.reason
    words = set(readable) | (element_categories(rt, sent) if sent is not None else {rt.category})
    again = decide(actor, Right.WRITE, words, target)
    return again.reason if not again.allowed else "this record cannot be changed by you"


def _erasing(operation: Operation, left_out: tuple[str, ...] | None) -> str:
    """Why an update labelled SUBSETTED is refused (``SubsetWouldErase``): the elements
    of the caller's view it leaves out, by name only, and what to do instead; or, to a
    caller who could not have read the record, that a view is not a record (the same
    words whatever the record holds)."""
    what = f"{operation.resource_type.name}/{operation.resource_id}"
    if left_out is None:
        return (
            f"{what}: the resource sent is labelled SUBSETTED, a view of a record, not a "
            "record: send the whole resource, without that label"
        )
    return (
        f"{what}: the resource sent is a view (labelled SUBSETTED) without "
        f"{', '.join(left_out[:20])}, which the record has; saved as sent, the update "
        "would erase them. Change only what you mean to with PATCH, or read the whole "
        "record (without _summary or _elements) and send it back changed"
    )


def _keep_owner(operation: Operation, head: Head, stored: Head | None) -> None:
    """An update never changes whose record it is, nor a patient's home clinic: those are
    privileged operations of their own (``Gate.transfer``), with a reason."""
    if stored is None or isinstance(operation, Delete):
        return
    if head.patient_pseudonym != stored.patient_pseudonym:
        raise AccessDenied(
            "an update cannot move a record to another patient; ask a privacy officer"
        )
    if operation.resource_type.is_patient and head.clinic_id != stored.clinic_id:
        raise AccessDenied("a patient's home clinic changes only by a transfer (Patient/$transfer)")


def _describe(window: Window) -> dict[str, Any]:
    who = (
        {"clinic": window.clinic_id}
        if window.clinic_id
        else {"practitioner": f"Practitioner/{window.practitioner_id}"}
    )
    return {**who, "from": window.valid_from_us, "until": window.valid_until_us}
