"""The privacy officer's decisions, each confirmed with a fresh TOTP code and recorded
in the ledger with its reason: whether to notify a regulator (never made by the code),
and whether to notify people of tiers that are not notified by default."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from carevault.access.accounts import SignInFailed, StaffAccounts
from carevault.domain.roles import Role
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.trail import AuditTrail

DECISIONS = ("notify", "not-notify", "filed")


class DecisionRefused(ValueError):
    """Not a privacy officer, no fresh TOTP code, or no reason given."""


@dataclass(frozen=True)
class Decision:
    incident_id: str
    subject: str
    decision: str
    reason: str
    officer: str


class Decisions:
    def __init__(
        self, accounts: StaffAccounts, audit: AuditTrail, now_us: Callable[[], int]
    ) -> None:
        self.accounts = accounts
        self.audit = audit
        self.now_us = now_us

    def record(self, decision: Decision, totp: str, detail: dict[str, object]) -> None:
        """Returns once the decision is in the ledger; DecisionRefused (also recorded)
        unless a privacy officer confirmed it with a fresh code and gave a reason."""
        if len(decision.reason.strip()) < 10:
            raise DecisionRefused("give the reason for the decision (at least 10 characters)")
        try:
            account = self.accounts.confirm_totp(decision.officer, totp)
            refused = (
                None
                if account.role is Role.PRIVACY_OFFICER
                else f"{account.role} is not a privacy officer"
            )
        except SignInFailed as failure:
            refused = failure.reason
        event = AuditEvent(
            tag=Tag.NOTIFY_RISK_DECIDED,
            outcome=Outcome.DENIED if refused else Outcome.SUCCESS,
            at_us=self.now_us(),
            principal=f"staff:{decision.officer}",
            role=str(Role.PRIVACY_OFFICER) if not refused else None,
            reason=decision.reason[:500] if not refused else f"refused: {refused}",
            detail={
                "incident": decision.incident_id,
                "subject": decision.subject,
                "decision": decision.decision,
                **detail,
            },
        )
        self.audit.record([event])
        if refused:
            raise DecisionRefused("a privacy officer's fresh TOTP code is required")
