"""The privacy officer's review of break-the-glass grants: one service for the CLI and
the console, so a review is checked and recorded the same way wherever it is made."""

from __future__ import annotations

from carevault.access.accounts import Account, StaffAccounts
from carevault.access.breakglass import BreakGlass, BreakGlassError, Grant
from carevault.clock import Clock, to_micros, utc_now
from carevault.domain.categories import DataCategory
from carevault.domain.roles import Role
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.trail import AuditTrail


class BreakGlassReview:
    def __init__(
        self,
        break_glass: BreakGlass,
        accounts: StaffAccounts,
        audit: AuditTrail,
        clock: Clock = utc_now,
    ) -> None:
        self.break_glass = break_glass
        self.accounts = accounts
        self.audit = audit
        self.clock = clock

    def review(
        self,
        reviewer: str,
        grant_id: str,
        outcome: str,
        *,
        source_address: str | None = None,
    ) -> Grant:
        """Record a privacy officer's finding (``justified`` or ``unjustified``) on a grant
        not yet reviewed; ``BreakGlassError`` if the reviewer is not a privacy officer or
        the grant cannot be reviewed. The finding is in the ledger before this returns."""
        account = self.accounts.find(reviewer)
        if account is None or account.role is not Role.PRIVACY_OFFICER:
            raise BreakGlassError("the reviewer must be a privacy officer")
        asked = self.break_glass.get(grant_id)
        grantee = self.accounts.get(asked.account_id)
        if grantee is not None and self.accounts.same_person(account.username, grantee.username):
            # A finding on a grant of one's own person is no review (adversary round 57:
            # a doctor's officer login found their physician login's grant justified).
            self._recorded(
                account, source_address, asked, Outcome.DENIED, "refused, it is their own"
            )
            raise BreakGlassError("another privacy officer reviews what is about you")
        grant = self.break_glass.review(grant_id, account.account_id, outcome)
        self._recorded(account, source_address, grant, Outcome.SUCCESS, outcome)
        return grant

    def words_shown(
        self,
        grants: list[Grant],
        *,
        principal: str,
        role: str | None,
        session_id: str | None = None,
        source_address: str | None = None,
    ) -> dict[str, str]:
        """The words each grant's clinician wrote (grant id -> text), unsealed for the
        review only once ``access:break-glass:shown``, naming who is shown them and each
        grant's patient, is in the ledger: the words may carry clinical detail, and the
        queue showed them with no entry naming the officer or the patient (adversary
        round 61). Fail closed: a ledger that cannot record raises, and nothing is
        unsealed."""
        if not grants:
            return {}
        at_us = to_micros(self.clock())
        self.audit.record(
            [
                AuditEvent(
                    tag=Tag.ACCESS_BREAK_GLASS_SHOWN,
                    outcome=Outcome.SUCCESS,
                    at_us=at_us,
                    principal=principal,
                    role=role,
                    session_id=session_id,
                    source_address=source_address,
                    patient_pseudonym=grant.patient_pseudonym,
                    # Free text a clinician wrote about the patient, which may say
                    # anything of their health: named as the most sensitive data it may
                    # hold (fail closed), so the scope of an incident on the officer
                    # lists the patient (adversary round 78).
                    categories=(DataCategory.SENSITIVE_CLINICAL.value,),
                    reason=f"grant {grant.grant_id}: the clinician's words shown for review",
                )
                for grant in grants
            ]
        )
        return {grant.grant_id: self.break_glass.reason_text(grant.grant_id) for grant in grants}

    def _recorded(
        self,
        account: Account,
        source_address: str | None,
        grant: Grant,
        outcome: Outcome,
        finding: str,
    ) -> None:
        """The review's ledger entry: the reviewer, the grant's patient and the finding."""
        self.audit.record(
            [
                AuditEvent(
                    tag=Tag.ACCESS_BREAK_GLASS_REVIEWED,
                    outcome=outcome,
                    at_us=to_micros(self.clock()),
                    principal=f"staff:{account.username}",
                    role=str(account.role),
                    source_address=source_address,
                    patient_pseudonym=grant.patient_pseudonym,
                    reason=f"grant {grant.grant_id}: {finding}",
                )
            ]
        )
