"""The gate: the one path through which patient data is read and written.

Every read and write passes here, in a fixed order that each method shows:
check the token's scope → locate the record's clear metadata → decide (the
access policy) → open or write → keep only what the caller may see → record the
decision in the audit ledger → return. The ledger entry is durable before any
data leaves (fail closed); for writes it commits in the same transaction. The
vault's decrypting reads are imported here and nowhere else (import-linter).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import tzinfo
from typing import Any

from sqlalchemy import Connection

from carevault.access.breakglass import Grant
from carevault.access.care import derive
from carevault.access.control import AccessControl
from carevault.access.scopes import Interaction, Scopes
from carevault.clock import to_micros
from carevault.containment.state import ContainmentActive, ContainmentState, ContainmentStore
from carevault.db import read_transaction
from carevault.domain.categories import DataCategory
from carevault.domain.policy import Actor, Decision, Target, decide
from carevault.domain.roles import CLINICIANS, Right
from carevault.fhir import jsonio
from carevault.fhir.categories import (
    changed_categories,
    element_categories,
    possible_categories,
    restore_withheld,
    subset,
)
from carevault.fhir.query import SearchQuery
from carevault.fhir.registry import RESOURCE_TYPES, ResourceType
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.trail import AuditTrail, AuditUnavailable
from carevault.vault.opening import open_sealed
from carevault.vault.records import Gone, Head, NotFound, Opened, Sealed, WriteResult
from carevault.vault.search import find
from carevault.vault.store import Vault
from carevault.vault.writer import Delete, Operation, Put, apply_writes

_ALL = frozenset(DataCategory)
_NO_CONTAINMENT = ContainmentState()

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
PHI_OFFLINE_NAME_ONLY = "patient data offline: name only, for the day's appointments"
KEY_LOCKDOWN = "key lockdown is on: no record can be decrypted for now"
CLINIC_LOCKED = "this clinic's patient data is locked for security reasons"


class AccessDenied(Exception):
    """The policy refused (403); the reason names the rule, never the data."""


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


@dataclass(frozen=True)
class CareSettings:
    zone: tzinfo
    days_before: int
    days_after: int


@dataclass
class _Attempt:
    caller: Caller
    tag: Tag
    resource_type: str | None
    resource_id: str | None
    patient_pseudonym: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


class Gate:
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
        self, caller: Caller, rt: ResourceType, head: Head, plain_read: bool
    ) -> Decision | None:
        """Refuse (503) what an active mode takes offline; a Decision when PHI-offline
        leaves only a patient's name for the day's appointments."""
        state = self._state()
        if state.key_lockdown:
            raise ContainmentActive(KEY_LOCKDOWN)
        if not state.active or head.patient_pseudonym is None:
            return None
        locked = state.locked_clinics
        if locked and self.access is not None and self.access.clinics_of(head) & locked:
            raise ContainmentActive(CLINIC_LOCKED)
        if not state.phi_offline or rt.name in self.offline_types:
            return None
        actor = caller.actor
        if (
            actor is not None
            and actor.account_id
            and self.access is not None
            and self.access.break_glass.emergency_active(
                actor.account_id, head.patient_pseudonym, self.access.now_us()
            )
        ):
            return None
        if (
            plain_read
            and rt.is_patient
            and self.vault.has_head("Appointment", head.patient_pseudonym, OPEN_APPOINTMENT)
        ):
            shown = frozenset({DataCategory.IDENTITY})
            return Decision(True, shown, possible_categories(rt) - shown, PHI_OFFLINE_NAME_ONLY)
        raise ContainmentActive(PHI_OFFLINE)

    def _contain_search(self, rt: ResourceType) -> None:
        state = self._state()
        if state.key_lockdown:
            raise ContainmentActive(KEY_LOCKDOWN)
        if state.phi_offline and rt.is_patient_data and rt.name not in self.offline_types:
            raise ContainmentActive(PHI_OFFLINE)

    def _contain_write(self, operations: Sequence[Operation]) -> None:
        state = self._state()
        if state.key_lockdown:
            raise ContainmentActive(KEY_LOCKDOWN)
        if state.read_only:
            raise ContainmentActive("read-only mode is on: no changes are accepted for now")
        if state.phi_offline and any(
            op.resource_type.is_patient_data and op.resource_type.name not in self.offline_types
            for op in operations
        ):
            raise ContainmentActive(PHI_OFFLINE)

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
        caller = attempt.caller
        actor = caller.actor
        glass = decision is not None and decision.break_glass_used
        return AuditEvent(
            tag=attempt.tag,
            outcome=outcome,
            at_us=self.vault_now(),
            principal=caller.principal,
            role=str(actor.role) if actor else "system",
            clinic_ids=tuple(sorted(actor.clinic_ids)) if actor else (),
            client_id=caller.client_id,
            session_id=caller.session_id,
            source_address=caller.source_address,
            user_agent=(caller.user_agent or "")[:200] or None,
            resource_type=attempt.resource_type,
            resource_id=resource_id or attempt.resource_id,
            patient_pseudonym=pseudonym or attempt.patient_pseudonym,
            categories=tuple(sorted(categories)),
            purpose="ETREAT" if glass else caller.purpose,
            break_glass_reason="break-the-glass grant" if glass else None,
            reason=reason,
            detail={**attempt.detail, **(detail or {})},
        )

    def vault_now(self) -> int:
        return to_micros(self.vault.clock())

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
        except (AccessDenied, ContainmentActive) as error:
            self.audit.record([self._event(attempt, Outcome.DENIED, reason=str(error))])
            raise
        except Exception as error:
            reason = str(error) if isinstance(error, NotFound | Gone) else type(error).__name__
            self.audit.record([self._event(attempt, Outcome.FAILED, reason=reason)])
            raise

    # --- policy ----------------------------------------------------------------------------

    def _scope(self, caller: Caller, rt: ResourceType, interaction: Interaction) -> None:
        if caller.scopes is not None and not caller.scopes.allows(rt.name, interaction):
            raise AccessDenied(
                f"the token's scopes do not allow '{interaction.value}' on {rt.name}"
            )

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
        contained = self._contain_read(caller, rt, head, plain_read)
        if contained is not None:
            return contained
        if caller.actor is None:
            return Decision(True, _ALL, frozenset(), "system")
        decision = decide(
            caller.actor,
            Right.READ,
            possible_categories(rt),
            self._target(caller, head, reading=reading),
        )
        if rt.category not in decision.granted:
            raise AccessDenied(decision.reason)
        return decision

    def _visible(self, rt: ResourceType, item: Opened, decision: Decision) -> Opened | None:
        """``item`` cut to the granted categories; None if it must not be shown at all."""
        if item.body is None or not (decision.withheld & possible_categories(rt)):
            return item
        resource = jsonio.load(item.body)
        shown = subset(rt, resource, decision.granted)
        if shown is None:
            return None
        if shown is resource:
            return item
        return Opened(item.head, jsonio.dumps(shown))

    def _open(self, caller: Caller, items: Sequence[Sealed]) -> list[Opened]:
        return open_sealed(self.vault, items, principal=caller.principal, purpose=caller.purpose)

    # --- reads -----------------------------------------------------------------------------

    def read(self, caller: Caller, rt: ResourceType, resource_id: str) -> Opened:
        with self._attempt(caller, Tag.FHIR_READ, rt.name, resource_id) as attempt:
            self._scope(caller, rt, Interaction.READ)
            # The record and the policy's facts about it in one read transaction; it ends
            # before the record is opened and the audit entry written.
            with read_transaction(self.vault.engine) as reading:
                located = self.vault.locate(rt.name, resource_id, reading)
                attempt.patient_pseudonym = located.head.patient_pseudonym
                if located.head.deleted:
                    raise Gone(f"{rt.name}/{resource_id} was deleted")
                decision = self._decide_read(
                    caller, rt, located.head, plain_read=True, reading=reading
                )
            return self._read_one(caller, attempt, rt, located, decision)

    def vread(self, caller: Caller, rt: ResourceType, resource_id: str, version_id: int) -> Opened:
        with self._attempt(caller, Tag.FHIR_VREAD, rt.name, resource_id) as attempt:
            self._scope(caller, rt, Interaction.READ)
            located = self.vault.locate_version(rt.name, resource_id, version_id)
            attempt.patient_pseudonym = located.head.patient_pseudonym
            if located.head.deleted:
                raise Gone(f"{rt.name}/{resource_id} version {version_id} is a deletion")
            return self._read_one(caller, attempt, rt, located)

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
        shown = self._visible(rt, self._open(caller, [located])[0], decision)
        if shown is None:
            # Withheld as a whole (e.g. a sensitive record): indistinguishable from absent.
            raise NotFound(f"{rt.name}/{located.head.resource_id} is not known")
        self.audit.record(
            [
                self._event(
                    attempt,
                    Outcome.SUCCESS,
                    categories=decision.granted,
                    decision=decision,
                    reason=decision.reason,
                )
            ]
        )
        return shown

    def history(self, caller: Caller, rt: ResourceType, resource_id: str) -> list[Opened]:
        with self._attempt(caller, Tag.FHIR_HISTORY, rt.name, resource_id) as attempt:
            self._scope(caller, rt, Interaction.READ)
            versions = self.vault.locate_history(rt.name, resource_id)
            current = versions[0].head
            attempt.patient_pseudonym = current.patient_pseudonym
            decision = self._decide_read(caller, rt, current)
            shown = [self._visible(rt, item, decision) for item in self._open(caller, versions)]
            visible = [item for item in shown if item is not None]
            self.audit.record(
                [
                    self._event(
                        attempt,
                        Outcome.SUCCESS,
                        categories=decision.granted,
                        decision=decision,
                        reason=decision.reason,
                        detail={"versions": len(visible)},
                    )
                ]
            )
            return visible

    def search(self, caller: Caller, query: SearchQuery) -> tuple[list[Opened], int]:
        rt = query.resource_type
        with self._attempt(caller, Tag.FHIR_SEARCH, rt.name) as attempt:
            self._scope(caller, rt, Interaction.SEARCH)
            self._contain_search(rt)
            attempt.detail["params"] = sorted({name for name, _ in query.applied})
            restrict, keep = self._reach(caller, rt)
            found, total = find(
                self.vault,
                query,
                principal=caller.principal,
                purpose=caller.purpose,
                restrict=restrict,
                candidate_limit=self.candidate_limit,
                keep=keep,
            )
            sealed = [item for item in found if isinstance(item, Sealed)]
            opened = {item.head.row_id: item for item in self._open(caller, sealed)}
            opened.update((item.head.row_id, item) for item in found if isinstance(item, Opened))
            page = [opened[item.head.row_id] for item in found]
            shown = self._show_many(caller, attempt, page)
            return shown, total

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
        if DataCategory.SENSITIVE_CLINICAL in probe.withheld:
            return (
                restrict,
                lambda item: subset(rt, jsonio.load(item.body or b"{}"), probe.granted) is not None,
            )
        return restrict, None

    def _show_many(
        self, caller: Caller, attempt: _Attempt, items: Sequence[Opened]
    ) -> list[Opened]:
        """Per-record decisions for a page of records, then one audit entry per patient."""
        shown: list[Opened] = []
        by_patient: dict[str | None, tuple[set[DataCategory], list[str], Decision | None]] = {}
        decisions: dict[tuple[str | None, str | None, str], Decision] = {}
        for item in items:
            rt = RESOURCE_TYPES[item.head.resource_type]
            key = (item.head.patient_pseudonym, item.head.clinic_id, rt.name)
            if key not in decisions:
                decisions[key] = self._decide_read(caller, rt, item.head)
            decision = decisions[key]
            visible = self._visible(rt, item, decision)
            if visible is None:
                continue
            shown.append(visible)
            categories, references, _ = by_patient.setdefault(
                item.head.patient_pseudonym, (set(), [], decision)
            )
            categories.update(decision.granted & possible_categories(rt))
            references.append(item.head.reference)
        events = [
            self._event(
                attempt,
                Outcome.SUCCESS,
                pseudonym=pseudonym,
                categories=frozenset(categories),
                decision=decision,
                detail={"returned": references},
            )
            for pseudonym, (categories, references, decision) in by_patient.items()
        ] or [self._event(attempt, Outcome.SUCCESS, detail={"returned": []})]
        self.audit.record(events)
        return shown

    def everything(self, caller: Caller, patient_id: str) -> list[Opened]:
        patient_type = RESOURCE_TYPES["Patient"]
        with self._attempt(caller, Tag.FHIR_EVERYTHING, "Patient", patient_id) as attempt:
            self._scope(caller, patient_type, Interaction.READ)
            located = self.vault.locate("Patient", patient_id)
            attempt.patient_pseudonym = located.head.patient_pseudonym
            if located.head.deleted:
                raise Gone(f"Patient/{patient_id} was deleted")
            self._decide_read(caller, patient_type, located.head)
            assert located.head.patient_pseudonym is not None  # noqa: S101 - every Patient has one
            compartment = [
                located,
                *(
                    item
                    for item in self.vault.locate_compartment(located.head.patient_pseudonym)
                    if item.head.row_id != located.head.row_id and self._may_read(caller, item)
                ),
            ]
            return self._show_many(caller, attempt, self._open(caller, compartment))

    def _may_read(self, caller: Caller, item: Sealed) -> bool:
        rt = RESOURCE_TYPES[item.head.resource_type]
        if caller.scopes is not None and not caller.scopes.allows(rt.name, Interaction.READ):
            return False
        try:
            self._decide_read(caller, rt, item.head)
        except AccessDenied:
            return False
        return True

    def include(self, caller: Caller, references: Sequence[tuple[str, str]]) -> list[Opened]:
        """Directory resources (no one's patient data) that returned records refer to."""
        located = [
            item
            for item in self.vault.locate_many(references)
            if item.head.patient_pseudonym is None and self._may_read(caller, item)
        ]
        with self._attempt(caller, Tag.FHIR_READ, None) as attempt:
            return self._show_many(caller, attempt, self._open(caller, located)) if located else []

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
            located = self.vault.locate("Patient", patient_id)
            pseudonym = located.head.patient_pseudonym
            if located.head.deleted or pseudonym is None:
                raise Gone(f"Patient/{patient_id} was deleted")
            attempt.patient_pseudonym = pseudonym
            grant = self.access.break_glass.grant(
                actor.account_id, pseudonym, reason, text, emergency=emergency
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

    def write(self, caller: Caller, operations: Sequence[Operation]) -> list[WriteResult]:
        tag = (
            Tag.FHIR_CREATE
            if all(isinstance(op, Put) and op.fresh for op in operations)
            else Tag.FHIR_UPDATE
        )
        first = operations[0] if operations else None
        with self._attempt(caller, tag, first.resource_type.name if first else None) as attempt:
            self._contain_write(operations)
            prepared: list[Operation] = []
            currents: dict[int, dict[str, Any]] = {}
            for operation in operations:
                ready, existing = self._prepare(caller, operation)
                prepared.append(ready)
                if existing is not None:
                    currents[id(ready)] = existing
            decisions: dict[int, Decision] = {}

            def authorize(connection: Connection, operation: Operation, head: Head) -> None:
                if caller.actor is None:
                    return
                rt = operation.resource_type
                interaction = (
                    Interaction.DELETE
                    if isinstance(operation, Delete)
                    else Interaction.CREATE
                    if head.row_id == 0
                    else Interaction.UPDATE
                )
                self._scope(caller, rt, interaction)
                current = currents.get(id(operation))
                if isinstance(operation, Delete):
                    categories: frozenset[DataCategory] | set[DataCategory] = possible_categories(
                        rt
                    )
                elif current is not None and head.row_id != 0 and not head.deleted:
                    categories = changed_categories(rt, operation.resource, current)
                else:
                    categories = element_categories(rt, operation.resource)
                decision = decide(
                    caller.actor, Right.WRITE, categories, self._target(caller, head, connection)
                )
                if not decision.allowed:
                    raise AccessDenied(decision.reason)
                decisions[id(operation)] = decision
                locked = self._state().locked_clinics
                if (
                    locked
                    and self.access is not None
                    and self.access.clinics_of(head, connection) & locked
                ):
                    raise ContainmentActive(CLINIC_LOCKED)

            def after_write(connection: Connection, result: WriteResult) -> None:
                self._derive_care(connection, result)

            def before_commit(connection: Connection, results: list[WriteResult]) -> None:
                events = [
                    self._write_event(attempt, operation, result, decisions.get(id(operation)))
                    for operation, result in zip(prepared, results, strict=True)
                ]
                self.audit.record(events, connection)

            return apply_writes(
                self.vault,
                prepared,
                principal=caller.principal,
                purpose=caller.purpose,
                before_commit=before_commit,
                authorize=authorize,
                after_write=after_write,
            )

    def _prepare(
        self, caller: Caller, operation: Operation
    ) -> tuple[Operation, dict[str, Any] | None]:
        """Fill in what a staff member would expect, and keep what they could not see.

        Returns the operation to apply and, for an update a staff member may read,
        the current resource (so the policy judges only what the update changes).
        """
        if caller.actor is None or not isinstance(operation, Put):
            return operation, None
        resource = operation.resource
        rt = operation.resource_type
        if (
            rt.is_patient
            and "managingOrganization" not in resource
            and len(caller.actor.clinic_ids) == 1
        ):
            (clinic,) = caller.actor.clinic_ids
            resource = {**resource, "managingOrganization": {"reference": f"Organization/{clinic}"}}
        existing: dict[str, Any] | None = None
        if not operation.fresh:
            try:
                current = self.vault.locate(rt.name, operation.resource_id)
            except NotFound:
                current = None
            if current is not None and not current.head.deleted:
                decision = decide(
                    caller.actor,
                    Right.READ,
                    possible_categories(rt),
                    self._target(caller, current.head),
                )
                if decision.allowed:
                    [opened] = self._open(caller, [current])
                    existing = jsonio.load(opened.body or b"{}")
                    if decision.withheld:
                        resource = restore_withheld(rt, resource, existing, decision.granted)
        return replace(operation, resource=resource), existing

    def _derive_care(self, connection: Connection, result: WriteResult) -> None:
        if self.access is None or result.head.resource_type not in (
            "Encounter",
            "Appointment",
            "CareTeam",
        ):
            return
        relationships = (
            []
            if result.resource is None or result.head.deleted
            else derive(
                result.head.resource_type,
                result.resource,
                result.head.clinic_id,
                self.care.zone,
                days_before=self.care.days_before,
                days_after=self.care.days_after,
            )
        )
        self.access.care.replace(
            connection, result.head.row_id, result.head.patient_pseudonym, relationships
        )

    def _write_event(
        self,
        attempt: _Attempt,
        operation: Operation,
        result: WriteResult,
        decision: Decision | None,
    ) -> AuditEvent:
        rt = operation.resource_type
        if isinstance(operation, Delete):
            tag, categories = Tag.FHIR_DELETE, possible_categories(rt)
        else:
            tag = Tag.FHIR_CREATE if result.created else Tag.FHIR_UPDATE
            categories = frozenset(element_categories(rt, operation.resource))
        return replace(
            self._event(
                attempt,
                Outcome.SUCCESS,
                pseudonym=result.head.patient_pseudonym,
                categories=categories,
                decision=decision,
                resource_id=result.head.resource_id,
                reason=decision.reason if decision else "system",
                detail={"version": result.head.version_id},
            ),
            tag=tag,
            resource_type=rt.name,
        )
