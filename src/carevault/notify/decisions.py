"""The privacy officer's decisions, each confirmed with a fresh TOTP code and recorded
in the ledger with its reason: whether to notify a regulator (never made by the code),
whether to notify people of tiers that are not notified by default, and starting (or
resuming) an incident's notices, which speaks to patients in the group's name."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from carevault.access.accounts import SignInFailed, StaffAccounts
from carevault.domain.categories import DataCategory
from carevault.domain.roles import Role
from carevault.incidents.naming import names
from carevault.keys.words import SealedWords, entry_reason, entry_words, officer_words
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.trail import AuditTrail
from carevault.notify.scope import Exposure

if TYPE_CHECKING:
    from carevault.bootstrap import Services

DECISIONS = ("notify", "not-notify", "filed")


class DecisionRefused(ValueError):
    """Not a privacy officer, no fresh TOTP code, or no reason given."""


class StartRefused(DecisionRefused):
    """The notices were not started: no privacy officer's fresh TOTP code (recorded)."""


class PreviewRefused(DecisionRefused):
    """A notice was not shown: no privacy officer's fresh TOTP code (recorded)."""


@dataclass(frozen=True)
class Decision:
    incident_id: str
    subject: str
    decision: str
    reason: str
    officer: str


#: What an officer's reasons for a regulator decision are sealed as.
DECISION_WORDS = "carevault-notify-decision/1"


def decisions_for(services: Services) -> Decisions:
    """The decisions of ``services``' officers, their reasons sealed at rest."""
    return Decisions(
        services.accounts,
        services.audit,
        services.now_us,
        officer_words(services.keys, "system:notify", DECISION_WORDS),
        pseudonym_of=lambda patient_id: _pseudonym(services, patient_id),
    )


def _pseudonym(services: Services, patient_id: str) -> str | None:
    """The pseudonym of Patient ``patient_id`` from its clear metadata (nothing is
    decrypted); None if the vault has no such record."""
    from carevault.vault.records import NotFound

    try:
        return services.vault.locate("Patient", patient_id).head.patient_pseudonym
    except NotFound:
        return None


#: What any notice shown in full tells of its person besides what was exposed: their
#: name (identity) and the address or number it is sent to (contact).
NOTICE_SHOWS = (DataCategory.IDENTITY, DataCategory.CONTACT)


class Decisions:
    def __init__(
        self,
        accounts: StaffAccounts,
        audit: AuditTrail,
        now_us: Callable[[], int],
        words: SealedWords | None = None,
        *,
        pseudonym_of: Callable[[str], str | None] = lambda patient_id: None,
    ) -> None:
        """``words`` seals the reason given for a decision into its ledger entry (it may
        name a patient: "Mrs Chan's family already knows"); None keeps it as typed.
        ``pseudonym_of`` names a Patient record as the ledger does (None: not on
        record); a notice of a record it cannot name is not shown."""
        self.accounts = accounts
        self.audit = audit
        self.now_us = now_us
        self.words = words
        self.pseudonym_of = pseudonym_of

    def _refusal(self, officer: str, totp: str, source: str | None) -> str | None:
        """None if ``officer`` is a privacy officer who gave a fresh code (the code is
        spent: it cannot confirm anything else); otherwise why not."""
        try:
            self.accounts.confirm_officer(officer, totp, source)
        except SignInFailed as failure:
            return failure.reason
        return None

    def _decided(
        self, decision: Decision, refused: str | None, detail: dict[str, object]
    ) -> AuditEvent:
        at_us = self.now_us()
        said, sealed = (
            entry_words(
                self.words,
                decided_binding(decision.incident_id, decision.subject, at_us),
                decision.reason[:500],
                f"{decision.decision} (the officer's reason sealed in the detail)",
            )
            if not refused
            else (f"refused: {refused}", {})
        )
        return AuditEvent(
            tag=Tag.NOTIFY_RISK_DECIDED,
            outcome=Outcome.DENIED if refused else Outcome.SUCCESS,
            at_us=at_us,
            principal=f"staff:{decision.officer}",
            role=str(Role.PRIVACY_OFFICER) if not refused else None,
            reason=said,
            detail={
                "incident": decision.incident_id,
                "subject": decision.subject,
                "decision": decision.decision,
                **detail,
                **sealed,
            },
        )

    def reason_of(self, event: AuditEvent) -> str:
        """The reason given for the decision ``event`` records, opened."""
        binding = decided_binding(
            str(event.detail.get("incident", "")), str(event.detail.get("subject", "")), event.at_us
        )
        return entry_reason(self.words, binding, event.reason or "", event.detail)

    def record(
        self,
        decision: Decision,
        totp: str,
        detail: dict[str, object],
        *,
        named: Collection[str] = (),
    ) -> None:
        """Returns once the decision is in the ledger; DecisionRefused (also recorded)
        unless a privacy officer confirmed it with a fresh code and gave a reason.
        ``named``: the accounts the incident names as compromised, none of whom decides
        on it (adversary round 41: the officer an incident was about recorded
        "not-notify" for it and stopped its clocks)."""
        if len(decision.reason.strip()) < 10:
            raise DecisionRefused("give the reason for the decision (at least 10 characters)")
        if names(named, decision.officer):
            self.audit.record(
                [self._decided(decision, "the incident names this officer as compromised", detail)]
            )
            raise DecisionRefused(
                "an officer the incident names as compromised does not decide on it; "
                "ask another privacy officer"
            )
        refused = self._refusal(decision.officer, totp, None)
        self.audit.record([self._decided(decision, refused, detail)])
        if refused:
            raise DecisionRefused("a privacy officer's fresh TOTP code is required")

    def show_notice(
        self,
        incident_id: str,
        officer: str,
        totp: str,
        exposure: Exposure,
        source: str | None = None,
    ) -> None:
        """The officer's go for one person's notice printed in full (``notify preview
        --patient``: their name, address, what of theirs was exposed, a code that will
        verify): returns only once ``notify:preview:shown`` is in the ledger, one entry
        per Patient record the notice covers, each naming the officer, the record, its
        patient's pseudonym and what the notice shows of them (identity and contact, and
        the categories it says were exposed: ``exposure.categories``), so that an incident
        declared on the officer lists them (``incidents.query.RELEASE_TAGS``) and their
        access reports show it. ``PreviewRefused`` (the refusal recorded) unless a
        privacy officer confirmed it with a fresh code and every covered record is on
        record (a record the ledger cannot name would be shown unaccounted for).
        Adversary round 59: anyone with a shell printed any notified patient's notice,
        the reads recorded as the notification service's alone. Round 77: the entry
        named no patient and no category, so the scope of an incident on the officer
        did not list the people whose notices were printed."""
        patients = exposure.covers
        refused = self._refusal(officer, totp, source)
        message = "a privacy officer's fresh TOTP code is required"
        named = {patient: self.pseudonym_of(patient) for patient in patients}
        if not refused and (not patients or None in named.values()):
            refused = message = "a Patient record the notice covers is not on record"
        if refused:
            self.audit.record(
                [
                    self._go(
                        Tag.NOTIFY_PREVIEW_SHOWN,
                        incident_id,
                        officer,
                        source,
                        refused,
                        {"covers": list(patients)},
                        resource_type="Patient",
                        resource_id=patients[0] if patients else None,
                    )  # fmt: skip
                ]
            )
            raise PreviewRefused(message)
        shows = sorted({str(c) for c in NOTICE_SHOWS} | {str(c) for c in exposure.categories})
        self.audit.record(
            [
                replace(
                    self._go(
                        Tag.NOTIFY_PREVIEW_SHOWN,
                        incident_id,
                        officer,
                        source,
                        None,
                        {"covers": list(patients)},
                        resource_type="Patient",
                        resource_id=patient,
                    ),
                    patient_pseudonym=named[patient],
                    categories=tuple(shows),
                )
                for patient in patients
            ]
        )

    def _go(
        self,
        tag: Tag,
        incident_id: str,
        officer: str,
        source: str | None,
        refused: str | None,
        detail: dict[str, object],
        *,
        resource_type: str | None = None,
        resource_id: str | None = None,
    ) -> AuditEvent:
        """The entry of an officer's go for ``incident_id`` (a notice shown, a send
        started), or of its refusal (``refused``: why)."""
        return AuditEvent(
            tag=tag,
            outcome=Outcome.DENIED if refused else Outcome.SUCCESS,
            at_us=self.now_us(),
            principal=f"staff:{officer}",
            role=str(Role.PRIVACY_OFFICER) if not refused else None,
            source_address=source,
            reason=f"incident {incident_id}" + (f": refused: {refused}" if refused else ""),
            detail={"incident": incident_id, **detail},
            resource_type=resource_type,
            resource_id=resource_id,
        )

    def start_job(
        self,
        incident_id: str,
        officer: str,
        totp: str,
        *,
        tiers: tuple[str, ...],
        source: str | None = None,
        also: Decision | None = None,
    ) -> None:
        """The officer's go for the notices of ``incident_id`` (from the console or
        ``carevault notify send``): returns only once ``notify:job:started``, naming the
        officer, is in the ledger; ``StartRefused`` (the refusal recorded) unless a
        privacy officer confirmed it with a fresh TOTP code. ``also``, the decision to
        notify more tiers than the default, is confirmed by the same code and recorded
        with it (a code works once)."""
        if also is not None and len(also.reason.strip()) < 10:
            raise DecisionRefused("give the reason for the decision (at least 10 characters)")
        refused = self._refusal(officer, totp, source)
        started = self._go(
            Tag.NOTIFY_JOB_STARTED, incident_id, officer, source, refused, {"tiers": list(tiers)}
        )
        events = [started]
        if also is not None:
            events.insert(0, self._decided(also, refused, {"tiers": list(tiers)}))
        self.audit.record(events)
        if refused:
            raise StartRefused("a privacy officer's fresh TOTP code is required")


def decided_binding(incident_id: str, subject: str, at_us: int) -> str:
    """What a decision's reason is sealed bound to: its incident, subject and time."""
    return f"{incident_id}|{subject}|{at_us}"
