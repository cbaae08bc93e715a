"""Administration of accounts and client apps, each action recorded in the audit ledger.

Whatever weakens an identity ends its sessions at once: suspending an account,
changing its password or resetting its TOTP revokes every session and refresh
token it holds; revoking a client app ends every session opened through it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from carevault.access.accounts import Account, AccountError, StaffAccounts
from carevault.access.clients import ClientApp, ClientApps, ClientError
from carevault.access.registrations import fisher
from carevault.access.sessions import Sessions
from carevault.clock import Clock, to_micros, utc_now
from carevault.domain.roles import Role
from carevault.keys.words import SealedWords, entry_reason, entry_words
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.trail import AuditTrail, submit_unwaited

#: Why a suspended account's sessions ended, and a session an administrator ended: kept
#: in the session's row and in the entry of every refused use of it, so fixed words, not
#: what was typed (which may name a patient: "read Mrs Chan's chart"); the typed reason
#: is sealed in the suspension's or the ending's own ledger entry.
SUSPENDED = "account suspended"
SESSION_ENDED = "ended by an administrator"
#: What an administrator's reasons are sealed as (``keys.words.officer_words``).
ADMIN_WORDS = "carevault-admin-reason/1"

log = logging.getLogger("carevault.access")
#: Who records an account found altered.
ACCESS_PRINCIPAL = "system:access"


def account_altered(audit: AuditTrail, now_us: Callable[[], int]) -> Callable[[str], None]:
    """What ``Sessions.account_altered`` is told, recorded: an ``auth:account:altered``
    entry naming the account (submitted, not waited for: a session's state is read on a
    request's way), which the detectors raise as a critical alert (``detect.tamper``)."""
    return _sealed_row_altered(
        audit,
        now_us,
        Tag.ACCOUNT_ALTERED,
        "staff account",
        "account",
        "its role, clinics or practitioner were edited in the database; refused",
        logged="refused",
    )


def grant_altered(audit: AuditTrail, now_us: Callable[[], int]) -> Callable[[str], None]:
    """What ``BreakGlass.altered`` is told, recorded: an ``access:break-glass:altered``
    entry naming the grant (never its patient: the row's patient is what may have been
    altered), raised by the detectors as a critical alert (``detect.tamper``)."""
    return _sealed_row_altered(
        audit,
        now_us,
        Tag.ACCESS_BREAK_GLASS_ALTERED,
        "break-the-glass grant",
        "grant",
        "inserted or edited in the database; not honoured",
    )


def client_altered(audit: AuditTrail, now_us: Callable[[], int]) -> Callable[[str], None]:
    """What ``ClientApps.altered`` is told, recorded: an ``auth:client:altered`` entry
    naming the app (submitted, not waited for), raised by the detectors as a critical
    alert (``detect.tamper``; adversary round 70)."""
    return _sealed_row_altered(
        audit,
        now_us,
        Tag.CLIENT_ALTERED,
        "client app",
        "client",
        "its clinics, scopes, credentials, account or revocation were edited in the "
        "database; refused",
        logged="refused",
    )


def session_altered(audit: AuditTrail, now_us: Callable[[], int]) -> Callable[[str], None]:
    """What ``Sessions.session_altered`` is told, recorded: an ``auth:session:altered``
    entry naming the session, raised by the detectors as a critical alert."""
    return _sealed_row_altered(
        audit,
        now_us,
        Tag.SESSION_ALTERED,
        "session",
        "session",
        "whom it acts for, its scopes, patient, expiry, revocation or step-up were edited "
        "in the database; refused",
    )


def session_written_back(
    audit: AuditTrail, now_us: Callable[[], int]
) -> Callable[[str, str], None]:
    """What ``Sessions.session_written_back`` is told, recorded: an ``auth:session:altered``
    entry naming the session and what its row written back lifted ("revocation" or
    "step-up"), raised by the detectors as a critical alert."""

    def record(session_id: str, lifted: str) -> None:
        _record_altered(
            audit,
            now_us,
            Tag.SESSION_ALTERED,
            f"session {session_id}: a row saved before its {lifted} was written back in "
            "the database; the register beside the keyring holds it: refused",
            {"session": session_id, "why": "written back", "lifted": lifted},
        )

    return record


def client_written_back(audit: AuditTrail, now_us: Callable[[], int]) -> Callable[[str], None]:
    """What ``ClientApps.written_back`` is told, recorded: an ``auth:client:altered``
    entry naming the app, raised by the detectors as a critical alert."""

    def record(client_id: str) -> None:
        _record_altered(
            audit,
            now_us,
            Tag.CLIENT_ALTERED,
            f"client app {client_id}: a row saved before its revocation was written back "
            "in the database; the register beside the keyring holds it: refused",
            {"client": client_id, "why": "written back"},
        )

    return record


def register_failed(audit: AuditTrail, now_us: Callable[[], int]) -> Callable[[str], None]:
    """What ``Sessions.register_failed`` and ``ClientApps.register_failed`` are told
    (once a process for each kind of failure): the revocations' register beside the
    keyring (``keys.revocations``) not written (a revocation or step-up then stands in
    the database alone, where a row written back would undo it) or not read (every
    session is refused). A ``keys:register:failed`` entry, raised by the detectors as a
    critical alert: the custodian's folder wants looking at."""

    def record(what: str) -> None:
        _record_altered(
            audit,
            now_us,
            Tag.REGISTER_FAILED,
            f"the revocations' register beside the keyring: {what}",
            {"register": "revocations", "what": what},
        )

    return record


def registration_altered(audit: AuditTrail, now_us: Callable[[], int]) -> Callable[[str], None]:
    """What ``Registrations.altered`` is told, recorded: an ``access:registration:altered``
    entry naming the registration (a digest and its clinic: ``registration_name``),
    raised by the detectors as a critical alert."""
    return _sealed_row_altered(
        audit,
        now_us,
        Tag.ACCESS_REGISTRATION_ALTERED,
        "registration",
        "registration",
        "inserted or edited in the database; it places the patient nowhere",
    )


def care_altered(audit: AuditTrail, now_us: Callable[[], int]) -> Callable[[str], None]:
    """What ``CareRelationships.altered`` is told, recorded: an ``access:care:altered``
    entry naming the row (``care.care_name``), raised by the detectors as a critical
    alert."""
    return _sealed_row_altered(
        audit,
        now_us,
        Tag.ACCESS_CARE_ALTERED,
        "care relationship",
        "relationship",
        "inserted or edited in the database; it opens nothing and explains no access",
    )


def _sealed_row_altered(
    audit: AuditTrail,
    now_us: Callable[[], int],
    tag: Tag,
    kind: str,
    key: str,
    what: str,
    *,
    logged: str | None = None,
) -> Callable[[str], None]:
    """A recorder of rows of ``kind`` found not to match their seals: an entry of ``tag``
    whose detail names the row under ``key``, saying ``what`` was edited and what is
    done; ``logged``: also log it so (where the caller does not tell the log itself)."""

    def record(name: str) -> None:
        if logged is not None:
            log.error("%s %s was altered in the database: %s", kind, name, logged)
        _record_altered(
            audit, now_us, tag, f"{kind} {name} does not match its seal: {what}", {key: name}
        )

    return record


def _record_altered(
    audit: AuditTrail,
    now_us: Callable[[], int],
    tag: Tag,
    reason: str,
    detail: dict[str, Any],
) -> None:
    submit_unwaited(
        audit,
        [
            AuditEvent(
                tag=tag,
                outcome=Outcome.FAILED,
                at_us=now_us(),
                principal=ACCESS_PRINCIPAL,
                reason=reason,
                detail=detail,
            )
        ],
        f"an altered row ({tag.value})",
    )


class Administration:
    def __init__(
        self,
        accounts: StaffAccounts,
        clients: ClientApps,
        sessions: Sessions,
        audit: AuditTrail,
        clock: Clock = utc_now,
        words: SealedWords | None = None,
    ) -> None:
        """``words`` seals the reasons typed for suspending an account or ending a
        session into their ledger entries (``keys.words.officer_words``); the sessions
        ended keep a fixed reason, since every refused use of one is recorded with it."""
        self.words = words
        self.accounts = accounts
        self.clients = clients
        self.sessions = sessions
        self.audit = audit
        self.clock = clock

    def _record(
        self, by: str, tag: Tag, subject: str, at_us: int | None = None, **detail: Any
    ) -> None:
        self.audit.record(
            [
                AuditEvent(
                    tag=tag,
                    outcome=Outcome.SUCCESS,
                    at_us=to_micros(self.clock()) if at_us is None else at_us,
                    principal=by,
                    role="administrator",
                    reason=subject,
                    detail=detail,
                )
            ]
        )

    def add_staff(
        self,
        by: str,
        username: str,
        display_name: str,
        role: Role,
        clinic_ids: Sequence[str],
        password: str,
        practitioner_id: str | None = None,
    ) -> tuple[Account, str]:
        account, secret = self.accounts.add(
            username, display_name, role, clinic_ids, password, practitioner_id
        )
        self._record(
            by,
            Tag.ADMIN_STAFF_ADDED,
            account.account_id,
            role=str(role),
            clinics=sorted(clinic_ids),
        )
        return account, secret

    def suspend(self, by: str, username: str, *, reason: str = "") -> tuple[Account, int]:
        """Suspend an account and end its sessions. ``reason``: what the person
        suspending typed, sealed into the entry (empty when containment suspends: its
        measure keeps the reason)."""
        account = self.accounts.set_suspended(username, True)
        ended = self.sessions.revoke_all(account_id=account.account_id, reason=SUSPENDED)
        at_us = to_micros(self.clock())
        self._record(
            by, Tag.ADMIN_STAFF_SUSPENDED, account.account_id, at_us,
            sessions_ended=ended,
            **self._sealed("suspended", account.account_id, at_us, reason),
        )  # fmt: skip
        return account, ended

    def reason_of(self, event: AuditEvent) -> str:
        """The reason typed for a suspension's or a session's ending ``event``, opened
        (as ``SealedWords.shown`` shows words that do not open); empty if none was given."""
        kind = "suspended" if event.tag is Tag.ADMIN_STAFF_SUSPENDED else "session-ended"
        typed = str(event.detail.get("why", ""))
        binding = _binding(kind, event.reason or "", event.at_us)
        return entry_reason(self.words, binding, typed, event.detail)

    def _sealed(self, kind: str, subject: str, at_us: int, reason: str) -> dict[str, str]:
        """An entry's detail for ``reason``: sealed (``reason_sealed``), or as typed
        (``why``) with encryption off; nothing for no reason."""
        said, sealed = entry_words(self.words, _binding(kind, subject, at_us), reason[:500], "")
        return sealed or ({"why": said[:200]} if said else {})

    def reinstate(self, by: str, username: str) -> Account:
        account = self.accounts.set_suspended(username, False)
        self._record(by, Tag.ADMIN_STAFF_REINSTATED, account.account_id)
        return account

    def reset_password(self, by: str, username: str, password: str) -> int:
        account = self.accounts.set_password(username, password)
        ended = self.sessions.revoke_all(account_id=account.account_id, reason="password changed")
        self._record(by, Tag.ADMIN_PASSWORD_CHANGED, account.account_id, sessions_ended=ended)
        return ended

    def reset_totp(self, by: str, username: str) -> tuple[Account, str]:
        account, secret = self.accounts.reset_totp(username)
        ended = self.sessions.revoke_all(account_id=account.account_id, reason="TOTP reset")
        self._record(by, Tag.ADMIN_TOTP_RESET, account.account_id, sessions_ended=ended)
        return account, secret

    def end_session(self, by: str, session_id: str, *, reason: str) -> bool:
        """End one live session of anyone (a lost device, a shared screen); False if it
        was not live."""
        ended = self.sessions.revoke(session_id, SESSION_ENDED)
        if ended:
            at_us = to_micros(self.clock())
            self._record(
                by, Tag.ADMIN_SESSION_ENDED, session_id, at_us,
                **self._sealed("session-ended", session_id, at_us, reason),
            )  # fmt: skip
        return ended

    def issue_recovery_codes(self, by: str, username: str) -> tuple[Account, list[str]]:
        account, codes = self.accounts.issue_recovery_codes(username)
        self._record(by, Tag.ADMIN_RECOVERY_CODES_ISSUED, account.account_id, count=len(codes))
        return account, codes

    def clear_throttle(self, by: str, username: str) -> int:
        """Empty a username's sign-in back-off and its registration wait (after checking
        with its owner: a busy desk whose honest ``$register`` misses, new patients
        each, made it wait)."""
        account = self.accounts.find(username)
        if account is None:
            raise AccountError(f"no account {username}")
        # The registration wait is the person's where the account names a practitioner.
        waiting = fisher(account.account_id, account.practitioner_id, f"staff:{username}")
        removed = self.accounts.throttle.clear(account.username, waiting)
        self._record(by, Tag.ADMIN_THROTTLE_CLEARED, account.account_id, levels=removed)
        return removed

    def add_client(
        self,
        by: str,
        client_id: str,
        name: str,
        *,
        confidential: bool,
        scopes: str,
        redirect_uris: Sequence[str] = (),
        clinic_ids: Sequence[str] = (),
        account: str | None = None,
        jwks: str | None = None,
    ) -> tuple[ClientApp, str | None]:
        """Register an app. ``account``: the integration account (username) a confidential
        app acts for; its clinics must be among the account's. ``jwks``: the public keys
        a confidential app signs its assertions with (no secret is issued then)."""
        account_id = None
        if account is not None:
            bound = self.accounts.find(account)
            if bound is None or bound.role is not Role.INTEGRATION:
                raise ClientError(f"{account} is not an integration account")
            if not set(clinic_ids) <= bound.clinic_ids:
                raise ClientError(f"the app's clinics must be among {bound.username}'s clinics")
            account_id = bound.account_id
        app, secret = self.clients.add(
            client_id,
            name,
            confidential=confidential,
            scopes=scopes,
            redirect_uris=redirect_uris,
            clinic_ids=clinic_ids,
            account_id=account_id,
            jwks=jwks,
        )
        detail: dict[str, Any] = {"scopes": scopes, "clinics": sorted(clinic_ids)}
        if account_id is not None:
            detail["account"] = account_id
        if app.jwks is not None:
            # Which keys may sign for it (their ids; the keys are public).
            detail["keys"] = [key["kid"] for key in json.loads(app.jwks)["keys"]]
        self._record(by, Tag.ADMIN_CLIENT_ADDED, client_id, **detail)
        return app, secret

    def revoke_client(self, by: str, client_id: str) -> tuple[ClientApp, int]:
        app = self.clients.revoke(client_id)
        ended = self.sessions.revoke_all(client_id=client_id, reason="client app revoked")
        self._record(by, Tag.ADMIN_CLIENT_REVOKED, client_id, sessions_ended=ended)
        return app, ended


def _binding(kind: str, subject: str, at_us: int) -> str:
    """What an administrator's reason is sealed bound to: its entry's kind, subject (the
    account or session) and time."""
    return f"{kind}|{subject}|{at_us}"
