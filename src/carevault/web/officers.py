"""Who may call the privacy officer's admin APIs (``/admin/…``, AuditEvent search, the
ledger's entries and access reports): one check, used by every route family.

Two things must both hold: the account is a privacy officer, and the token carries the
account's whole reach (``user/*.cruds``, see ``access.scopes.whole_account``). The role
alone is not enough: an officer who grants an app ``user/Patient.r`` has handed it a
token for reading Patient records, not for suspending staff, approving exports or
reading the ledger. A refusal answers 403 and is recorded (``web:request:refused``, by
``accounting.RefusalRecords``; the ledger's own reads record ``audit:ledger:read``).
"""

from __future__ import annotations

from collections.abc import Callable

from carevault.access.accounts import SignInFailed, StaffAccounts
from carevault.access.scopes import whole_account
from carevault.containment.service import Officer
from carevault.domain.roles import Role
from carevault.fhir.outcome import FhirError, Issue
from carevault.gate import Caller
from carevault.rest.errors import INSUFFICIENT_SCOPE

#: The scope a token needs for the officer's admin APIs and session management.
ADMIN_SCOPE = "user/*.cruds"


def narrowed(who: Caller) -> bool:
    """Whether the caller's token was granted less than its account's whole reach."""
    return not whole_account(who.scopes)


def officer_refusal(who: Caller, what: str) -> str | None:
    """Why ``who`` may not ``what`` as a privacy officer, or None if they may."""
    actor = who.actor
    if actor is None or actor.role is not Role.PRIVACY_OFFICER:
        return f"only a privacy officer may {what}"
    if not who.principal.startswith("staff:"):
        return f"only a signed-in privacy officer may {what}"
    if narrowed(who):
        return f"this token's scopes do not reach the officer's tools: {what} needs {ADMIN_SCOPE}"
    return None


def refusal_headers(who: Caller) -> dict[str, str]:
    """The challenge of an officer's refusal: RFC 6750's ``insufficient_scope`` when only
    the token's scopes stand in the way (an officer signed in through an app granted
    less), none when the account itself may not (no token would help)."""
    actor = who.actor
    if (
        actor is not None
        and actor.role is Role.PRIVACY_OFFICER
        and who.principal.startswith("staff:")
        and narrowed(who)
    ):
        return {"WWW-Authenticate": INSUFFICIENT_SCOPE}
    return {}


def is_officer(who: Caller) -> bool:
    return officer_refusal(who, "act") is None


def require_officer(who: Caller, what: str) -> None:
    """403 unless ``who`` is a privacy officer calling with a whole-account token."""
    reason = officer_refusal(who, what)
    if reason is not None:
        raise FhirError(403, [Issue("forbidden", reason)], refusal_headers(who))


def officer_code(who: Caller, totp: str, what: str) -> Officer:
    """The calling officer and the fresh code they typed, for a service that checks the
    code (containment, the export desk); 403 if ``who`` may not act as an officer."""
    require_officer(who, what)
    return Officer(who.principal.removeprefix("staff:"), totp, who.source_address)


def officer_step_up(accounts: StaffAccounts, who: Caller, code: object) -> Callable[[str], None]:
    """For a service that asks a fresh code before an action (an incident's narrowing):
    confirms ``code`` (the request's ``totp``) as the calling officer's own, or answers
    403 (recorded with the refused request, and counted against the account's step-up
    levels by ``confirm_totp``; an account that is no longer an officer's is refused too)."""

    def confirm(action: str) -> None:
        if not isinstance(code, str) or not code.strip():
            raise FhirError(
                403,
                [
                    Issue(
                        "forbidden",
                        f'{action}: send a fresh code from your authenticator as "totp"',
                    )
                ],
            )
        try:
            accounts.confirm_officer(
                who.principal.removeprefix("staff:"), code.strip(), who.source_address or "-"
            )
        except SignInFailed:
            raise FhirError(
                403, [Issue("forbidden", f"{action}: the code is wrong, used already, or refused")]
            ) from None

    return confirm


def require_whole_account(who: Caller, what: str) -> None:
    """403 unless the token carries its account's whole reach (session management)."""
    if narrowed(who):
        raise FhirError(
            403,
            [Issue("forbidden", f"this token's scopes do not allow {what}: ask for {ADMIN_SCOPE}")],
            {"WWW-Authenticate": INSUFFICIENT_SCOPE},
        )
