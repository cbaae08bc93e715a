"""Automatic responses to alerts: a policy per role and severity, each action written
in the audit ledger and reversible by a privacy officer with a fresh TOTP code.

Actions, mildest first: ``raise`` (the alert only), ``step-up`` (the account's sessions
get no more data until the user presents a fresh TOTP code for them, ``POST
/auth/step-up``, and the detectors watch the account for a day: ``after-step-up``; a
client app, which has no one to present a code, is suspended instead), ``throttle`` (a tenth
of the release budget until an officer lifts it), ``suspend`` (a containment switch: the
account is suspended and its sessions end; a client app is revoked), ``phi-offline``
(patient data offline for everyone). Suspension and PHI-offline are containment switches,
shown by ``carevault status`` and released with ``carevault contain release``.
A privacy officer is suspended automatically only while another privacy officer, not
suspended, can undo it (someone must be able to); the last one steps up instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from carevault.access.accounts import StaffAccounts, other_logins
from carevault.access.admin import Administration
from carevault.access.sessions import Sessions
from carevault.containment.state import ContainmentStore, Mode
from carevault.detect.alerts import Alert, AlertStore, Raised, as_dict
from carevault.detect.flags import Flags
from carevault.detect.glass import UNDER_GRANT
from carevault.detect.listing import described
from carevault.detect.model import RESPONDER, Severity
from carevault.detect.notify import AlertSinks
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.store import LedgerStore
from carevault.ledger.trail import AuditTrail

log = logging.getLogger("carevault.detect")
BY = RESPONDER
ACTIONS = ("raise", "step-up", "throttle", "suspend", "phi-offline")
DEFAULT_POLICY: dict[tuple[str | None, Severity], str] = {
    (None, Severity.LOW): "raise",
    (None, Severity.MEDIUM): "step-up",
    (None, Severity.HIGH): "suspend",
    (None, Severity.CRITICAL): "suspend",
}
#: Detectors whose alerts are for a person to judge, whatever their severity.
RAISE_ONLY = frozenset(
    {
        "detector-failure",
        "sign-in-failures",
        "gate-bypass",
        "decoy-contact-data",
        "stored-data-altered",
    }
)


@dataclass(frozen=True)
class Policy:
    table: dict[tuple[str | None, Severity], str]

    @classmethod
    def parse(cls, text: str) -> Policy:
        """The default table, overridden by 'severity=action' or 'role:severity=action'."""
        table = dict(DEFAULT_POLICY)
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            left, _, action = item.partition("=")
            role, _, severity = left.rpartition(":")
            try:
                level = Severity(severity.strip())
            except ValueError:
                raise ValueError(
                    f"CAREVAULT_DETECT_RESPONSES: {item!r}: unknown severity"
                ) from None
            if action.strip() not in ACTIONS:
                raise ValueError(
                    f"CAREVAULT_DETECT_RESPONSES: {item!r}: action must be one of "
                    + ", ".join(ACTIONS)
                )
            table[(role.strip() or None, level)] = action.strip()
        return cls(table)

    def action(self, alert: Alert, *, covered: bool = False) -> str:
        """The response to ``alert``. ``covered``: another privacy officer, not
        suspended, could undo a privacy officer's suspension."""
        if alert.detector in RAISE_ONLY or alert.principal is None:
            return "raise"
        if alert.severity is Severity.LOW and alert.detector in UNDER_GRANT:
            # A VIP, a co-worker or a household member opened under a break-the-glass
            # grant (adversary round 60): the officer is told; an emergency is never
            # paused, whatever a policy makes of other low alerts. These detectors
            # raise low for nothing else, and such an alert's key takes no other finding.
            return "raise"
        chosen = self.table.get((alert.role, alert.severity)) or self.table.get(
            (None, alert.severity), "raise"
        )
        if alert.role == "privacy_officer" and chosen in ("suspend", "throttle") and not covered:
            return "step-up"
        if chosen == "step-up" and not alert.account:
            # A client app has no one to present a code: ending its sessions only made it
            # take a new token with its secret and read on (the stolen lab interface of
            # the scorecard took 625 patients after its "step-up").
            return "suspend"
        return chosen


class Responder:
    def __init__(
        self,
        policy: Policy,
        alerts: AlertStore,
        containment: ContainmentStore,
        admin: Administration,
        accounts: StaffAccounts,
        sessions: Sessions,
        flags: Flags,
        audit: AuditTrail,
        sinks: AlertSinks,
        now_us: Callable[[], int],
        ledger: LedgerStore | None = None,
    ) -> None:
        """``ledger``: the audit ledger's store, from which an alert sent to the mailbox
        and the webhook is described as ``alerts list --json`` lists it (when its
        activity happened, at which clinics: ``listing.described``); None: its row only."""
        self.ledger = ledger
        self.policy = policy
        self.alerts = alerts
        self.containment = containment
        self.admin = admin
        self.accounts = accounts
        self.sessions = sessions
        self.flags = flags
        self.audit = audit
        self.sinks = sinks
        self.now_us = now_us

    def __call__(self, raised: list[Raised]) -> None:
        for item in raised:
            alert = item.alert
            action = self.policy.action(alert, covered=self._covered(alert))
            if not item.new and alert.action is not None and _rank(action) <= _rank(alert.action):
                continue
            try:
                containment_id = self._apply(alert, action)
            except Exception as error:  # noqa: BLE001 - the alert stands; an officer acts
                log.error("alert %d: %s failed: %s", alert.alert_id, action, type(error).__name__)
                action = f"{action}-failed"
                containment_id = None
            self.alerts.set_action(alert.alert_id, action, containment_id)
            self._record(alert, action, containment_id, item.trigger)
            self.sinks.send({**self._described(alert), "action": action})

    def _described(self, alert: Alert) -> dict[str, Any]:
        """The alert as a poller lists it (integrator round 67 left the mailbox and the
        webhook with the fields before it); its row alone if its entries cannot be read,
        so that the alert is still sent."""
        if self.ledger is None:
            return as_dict(alert)
        try:
            return described([alert], self.ledger)[0]
        except SQLAlchemyError as error:
            log.error(
                "alert %d: described without its entries: %s", alert.alert_id, type(error).__name__
            )
            return as_dict(alert)

    def _covered(self, alert: Alert) -> bool:
        """Whether another privacy officer, not suspended, could undo the suspension of
        the officer ``alert`` is about: only then is an officer suspended (a phished
        officer's account passes every step-up and reads every clinic's patients)."""
        if alert.role != "privacy_officer" or not alert.account:
            return False
        accounts = self.accounts.all()
        # Another login of the same person may not undo it (round 56): no one else.
        theirs = {alert.account, *(a.username for a in other_logins(alert.account, accounts))}
        return any(
            account.role == "privacy_officer"
            and not account.suspended
            and account.username not in theirs
            for account in accounts
        )

    def _apply(self, alert: Alert, action: str) -> int | None:
        reason = f"alert {alert.alert_id} ({alert.detector}, {alert.severity})"
        if action == "step-up":
            account = self.accounts.find(alert.account) if alert.account else None
            if account is not None:
                # The person stays signed in; no more data until a fresh TOTP code. The
                # detectors watch what the account opens next (``after-step-up``).
                self.sessions.require_step_up(
                    account_id=account.account_id, reason=f"step-up: {reason}"
                )
            return None
        if action == "throttle":
            self.flags.set("throttle", alert.principal or "", BY)
            return None
        if action == "suspend":
            return self._suspend(alert, reason)
        if action == "phi-offline":
            if self.containment.current().phi_offline:
                return None
            return self.containment.start(Mode.PHI_OFFLINE, None, reason, BY).containment_id
        return None

    def _suspend(self, alert: Alert, reason: str) -> int | None:
        mode, target = (
            (Mode.ACCOUNT_SUSPENDED, alert.account)
            if alert.account
            else (Mode.CLIENT_REVOKED, alert.client)
        )
        if target is None:
            return None
        started = self._contain(mode, target, reason)
        if mode is Mode.ACCOUNT_SUSPENDED:
            self._suspend_person(target, reason)
        return started

    def _contain(self, mode: Mode, target: str, reason: str) -> int:
        for item in self.containment.refresh().active:
            if item.mode is mode and item.target == target:
                return item.containment_id
        if mode is Mode.ACCOUNT_SUSPENDED:
            self.admin.suspend(BY, target)
        else:
            self.admin.revoke_client(BY, target)
        return self.containment.start(mode, target, reason, BY).containment_id

    def _suspend_person(self, username: str, reason: str) -> None:
        """Suspend the other logins of ``username``'s person (accounts naming the same
        practitioner, ``StaffAccounts.same_person``), as the release budget and the
        throttle hold them (adversary round 57: a doctor suspended for snooping read on
        with their nurse's login). A privacy officer's login is suspended only while
        another officer could undo it (``_covered``); otherwise it steps up."""
        accounts = self.accounts.all()
        for other in other_logins(username, accounts):
            if other.role == "privacy_officer" and not any(
                officer.role == "privacy_officer"
                and not officer.suspended
                and officer.practitioner_id != other.practitioner_id
                for officer in accounts
            ):
                self.sessions.require_step_up(
                    account_id=other.account_id, reason=f"step-up: {reason}"
                )
                continue
            self._contain(Mode.ACCOUNT_SUSPENDED, other.username, f"{reason}, same person")

    def _record(
        self, alert: Alert, action: str, containment_id: int | None, trigger: int | None
    ) -> None:
        tag = Tag.CONTAIN_STARTED if containment_id is not None else Tag.DETECT_ALERT_RAISED
        if action == "step-up":
            tag = Tag.DETECT_STEP_UP
        elif action == "throttle":
            tag = Tag.DETECT_THROTTLED
        self.audit.record(
            [
                AuditEvent(
                    tag=tag,
                    outcome=Outcome.SUCCESS,
                    at_us=self.now_us(),
                    principal=BY,
                    role="system",
                    reason=f"alert {alert.alert_id}: {alert.detector} ({alert.severity})",
                    detail={
                        "alert": alert.alert_id,
                        "action": action,
                        "account": alert.account,
                        "client": alert.client,
                        "containment": containment_id,
                        # The audit entry that raised it: raised_at minus that entry's
                        # time is how long detection took (bench.detect).
                        "raised_by_entry": trigger,
                    },
                )
            ]
        )


def _rank(action: str) -> int:
    base = action.removesuffix("-failed")
    return ACTIONS.index(base) if base in ACTIONS else 0
