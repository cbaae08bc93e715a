"""In-session step-up: a session an alert's response marked (``Sessions.require_step_up``)
gets no more data until its user presents a fresh TOTP code for it. The person stays
signed in; their work resumes the moment they prove it is them. Both outcomes are in
the audit ledger."""

from __future__ import annotations

from carevault.access.accounts import SignInFailed, StaffAccounts
from carevault.access.control import AccessControl
from carevault.access.tokens import InvalidToken
from carevault.clock import to_micros
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.trail import AuditTrail


class StepUpRefused(Exception):
    """No valid token for a live staff session, or no fresh TOTP code: ``str()`` is what
    the caller sees, ``reason`` goes to the audit."""

    def __init__(self, public: str, reason: str) -> None:
        super().__init__(public)
        self.reason = reason


def present_step_up(
    access: AccessControl,
    accounts: StaffAccounts,
    audit: AuditTrail,
    bearer: str | None,
    code: str,
    source: str | None,
    agent: str | None,
) -> None:
    """Clear the step-up of the bearer token's session with the user's fresh TOTP code.

    Only a session that is paused for a step-up may present one: any other token would
    otherwise be an oracle for the account's codes, with nothing to gain for its
    owner. Wrong codes count against the account from every source (``throttle``), so a
    holder of a stolen token cannot guess from a crowd of networks."""
    try:
        claims = access.signer.verify(bearer or "")
    except InvalidToken:
        raise StepUpRefused("a valid access token is required", "invalid token") from None
    state = access.sessions.state(claims.session_id, fresh=True)
    if not state.live or state.username is None:
        raise StepUpRefused("a valid access token is required", state.reason or "not staff")

    def record(outcome: Outcome, reason: str) -> None:
        audit.record(
            [
                AuditEvent(
                    tag=Tag.AUTH_STEPPED_UP,
                    outcome=outcome,
                    at_us=to_micros(access.clock()),
                    principal=f"staff:{state.username}",
                    role=state.role,
                    client_id=state.client_id,
                    session_id=state.session_id,
                    source_address=source,
                    user_agent=(agent or "")[:200] or None,
                    reason=reason,
                )
            ]
        )

    if not state.step_up:
        record(Outcome.DENIED, "step-up: the session is not paused for one")
        raise StepUpRefused("this session is not waiting for a step-up", "not paused")
    try:
        # A network caller always has a source here: only the host's CLI goes unheld
        # by the account-wide level (``throttle.step_up_check``).
        accounts.confirm_totp(state.username, code, source or "-")
    except SignInFailed as failure:
        record(Outcome.DENIED, f"step-up: {failure.reason}")
        raise StepUpRefused(
            "step-up refused: a fresh TOTP code is required", failure.reason
        ) from None
    access.sessions.stepped_up(state.session_id)
    record(Outcome.SUCCESS, "fresh TOTP code presented")
