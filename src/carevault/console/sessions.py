"""Signing in to the console, and knowing on every request who is there.

A console session is an ordinary ``auth_session`` (client ``carevault-console``), so
suspending an account, ending its sessions or revoking them from the staff page ends
it too, and "who is signed in" lists it. The browser holds a random secret in a
cookie; the database keeps only its SHA-256. The session also ends after
``idle_seconds`` without a request. Only the roles in ``CONSOLE_ROLES`` may sign in.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from carevault.access.accounts import Account, SignInFailed
from carevault.access.oauth import OAuth, Origin
from carevault.access.sessions import CONSOLE_CLIENT, Sessions
from carevault.clock import Clock, to_micros, utc_now
from carevault.console.tables import console_preference, console_session
from carevault.db import read_transaction, write_transaction
from carevault.domain.roles import Role
from carevault.keys.anchors import seal_fields, seal_matches, seal_unsealed
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.trail import AuditTrail

#: Who the console is for: the privacy officer, and clinic managers for their clinics.
CONSOLE_ROLES = frozenset({Role.PRIVACY_OFFICER, Role.CLINIC_MANAGER})
LANGUAGES = ("en", "zh-Hant")
#: last_seen is written at most this often, not on every request.
TOUCH_US = 15_000_000


class ConsoleRefused(Exception):
    """The credentials were right but this role has no use for the console."""


class ConsoleSessionEnded(Exception):
    """The session ended for want of use; the person signs in again."""


@dataclass(frozen=True)
class Viewer:
    """Who is looking at the console, as the session says now."""

    account_id: str
    username: str
    display_name: str
    role: Role
    clinic_ids: frozenset[str]
    practitioner_id: str | None
    session_id: str
    language: str | None

    @property
    def principal(self) -> str:
        return f"staff:{self.username}"

    @property
    def is_officer(self) -> bool:
        return self.role is Role.PRIVACY_OFFICER


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ConsoleSessions:
    def __init__(
        self,
        engine: Engine,
        oauth: OAuth,
        sessions: Sessions,
        audit: AuditTrail,
        *,
        idle_seconds: int,
        clock: Clock = utc_now,
    ) -> None:
        self.engine = engine
        self.oauth = oauth
        self.sessions = sessions
        self.audit = audit
        self.idle_us = idle_seconds * 1_000_000
        self.clock = clock
        #: The key cookies' rows are sealed with (None with encryption off) and whether
        #: every row has been sealed: set by the composition root (``keys.anchors``).
        self.seal_key: bytes | None = None
        self.all_sealed = False

    def _seal(self, digest: str, session_id: str, account_id: str, created_us: int) -> bytes | None:
        if self.seal_key is None:
            return None
        return seal_fields(
            self.seal_key, "carevault-console/1", [digest, session_id, account_id, created_us]
        )

    def _genuine(self, row: Any) -> bool:
        """Whether a ``console_session`` row is as CareVault wrote it (always, with no
        key): a row of someone's own cookie pointed at an officer's session, or inserted,
        opens no console (review of round 70)."""
        expected = self._seal(row.secret_hash, row.session_id, row.account_id, row.created_us)
        return expected is None or seal_matches(row.seal, expected, self.all_sealed)

    def seal_unsealed(self) -> int:
        """Seal every cookie's row that has no seal, as it stands (once)."""
        if self.seal_key is None:
            return 0
        return seal_unsealed(
            self.engine,
            console_session,
            [console_session.c.secret_hash],
            lambda row: self._seal(row.secret_hash, row.session_id, row.account_id, row.created_us),
        )

    def _record(
        self, tag: Tag, outcome: Outcome, origin: Origin, reason: str, **who: str | None
    ) -> None:
        self.audit.record(
            [
                AuditEvent(
                    tag=tag,
                    outcome=outcome,
                    at_us=to_micros(self.clock()),
                    principal=who.get("principal"),
                    role=who.get("role"),
                    client_id=CONSOLE_CLIENT,
                    session_id=who.get("session_id"),
                    source_address=origin.source_address,
                    user_agent=(origin.user_agent or "")[:200] or None,
                    reason=reason,
                )
            ]
        )

    def sign_in(self, username: str, password: str, code: str, origin: Origin) -> str:
        """The cookie secret of a new console session. ``SignInFailed`` (the same checks,
        lockout and audit as the token endpoint) or ``ConsoleRefused`` otherwise."""
        account = self.oauth.sign_in(username, password, code, origin, CONSOLE_CLIENT)
        if account.role not in CONSOLE_ROLES:
            self._record(
                Tag.CONSOLE_SIGN_IN_REFUSED,
                Outcome.DENIED,
                origin,
                f"{account.role} may not use the console",
                principal=f"staff:{account.username}",
                role=str(account.role),
            )
            raise ConsoleRefused(str(account.role))
        return self._open(account, origin)

    def _open(self, account: Account, origin: Origin) -> str:
        pair = self.sessions.open(
            subject=account.account_id,
            account_id=account.account_id,
            client_id=CONSOLE_CLIENT,
            scope="console",
            with_refresh=False,
            source_address=origin.source_address,
            user_agent=origin.user_agent,
        )
        secret = secrets.token_urlsafe(32)
        now_us = to_micros(self.clock())
        with write_transaction(self.engine) as connection:
            digest = secret_hash(secret)
            connection.execute(
                insert(console_session).values(
                    secret_hash=digest,
                    session_id=pair.session_id,
                    account_id=account.account_id,
                    display_name=account.display_name,
                    created_us=now_us,
                    last_seen_us=now_us,
                    seal=self._seal(digest, pair.session_id, account.account_id, now_us),
                )
            )
        self._record(
            Tag.CONSOLE_SESSION_OPENED,
            Outcome.SUCCESS,
            origin,
            "console session opened",
            principal=f"staff:{account.username}",
            role=str(account.role),
            session_id=pair.session_id,
        )
        return secret

    def resolve(self, secret: str, *, touch: bool = True) -> Viewer | None:
        """The viewer behind a cookie secret, if its session is live and was used within
        the idle time; ``ConsoleSessionEnded`` if it has just timed out. ``touch=False``
        for a request that will be refused: it does not count as the person's activity
        (a page elsewhere that kept asking would otherwise hold off the idle timeout)."""
        if not secret:
            return None
        digest = secret_hash(secret)
        with read_transaction(self.engine) as connection:
            row = connection.execute(
                select(console_session, console_preference.c.language)
                .outerjoin(
                    console_preference,
                    console_preference.c.account_id == console_session.c.account_id,
                )
                .where(console_session.c.secret_hash == digest)
            ).first()
        if row is None or not self._genuine(row):
            return None
        now_us = to_micros(self.clock())
        if now_us - row.last_seen_us > self.idle_us:
            self._forget(digest)
            if self.sessions.revoke(row.session_id, "console idle timeout"):
                self._record(
                    Tag.CONSOLE_SESSION_ENDED,
                    Outcome.SUCCESS,
                    Origin(None, None),
                    "idle timeout",
                    principal=f"staff-account:{row.account_id}",
                    session_id=row.session_id,
                )
            raise ConsoleSessionEnded(row.session_id)
        state = self.sessions.state(row.session_id)
        if (
            not state.live
            or state.username is None
            or state.role not in CONSOLE_ROLES
            # The cookie's account is its session's: never a viewer of one account
            # with another's role.
            or state.account_id != row.account_id
        ):
            self._forget(digest)
            return None
        if state.step_up:
            # An alert's response paused every session of the account until a fresh code
            # (``Sessions.require_step_up``), as a FHIR token is paused: the console's way
            # to present one is to sign in again, with the password and a fresh code
            # (adversary round 41: the paused cookie went on searching patients).
            self._forget(digest)
            if self.sessions.revoke(row.session_id, "paused for a step-up: sign in again"):
                self._record(
                    Tag.CONSOLE_SESSION_ENDED,
                    Outcome.SUCCESS,
                    Origin(None, None),
                    "paused for a step-up: sign in again",
                    principal=f"staff:{state.username}",
                    role=state.role,
                    session_id=row.session_id,
                )
            return None
        if touch and now_us - row.last_seen_us > TOUCH_US:
            with write_transaction(self.engine) as connection:
                connection.execute(
                    update(console_session)
                    .where(console_session.c.secret_hash == digest)
                    .values(last_seen_us=now_us)
                )
        return Viewer(
            account_id=row.account_id,
            username=state.username,
            display_name=row.display_name,
            role=Role(state.role or ""),
            clinic_ids=state.clinic_ids,
            practitioner_id=state.practitioner_id,
            session_id=row.session_id,
            language=row.language,
        )

    def _forget(self, digest: str) -> None:
        with write_transaction(self.engine) as connection:
            connection.execute(
                delete(console_session).where(console_session.c.secret_hash == digest)
            )

    def sign_out(self, secret: str, viewer: Viewer, origin: Origin) -> None:
        """End this console session (recorded as ended by its owner)."""
        self._forget(secret_hash(secret))
        self.oauth.end_session(viewer.account_id, viewer.session_id, origin)

    def end_replaced(self, secret: str, origin: Origin) -> None:
        """End the session a browser held when it signed in again (its cookie is replaced
        by the new one): left live, it would serve only whoever copied the old cookie."""
        try:
            viewer = self.resolve(secret, touch=False)
        except ConsoleSessionEnded:
            return
        if viewer is not None:
            self.sign_out(secret, viewer, origin)

    def confirm_code(self, viewer: Viewer, code: str, action: str, origin: Origin) -> None:
        """A fresh TOTP code from the viewer's own authenticator, before a sensitive action
        (the same check as containment's); ``StepUpRefused``, recorded, otherwise."""
        try:
            # The browser's address: held by the per-source and the account-wide
            # step-up levels like any network caller (the host's CLI passes none).
            self.oauth.accounts.confirm_totp(viewer.username, code, origin.source_address or "-")
        except SignInFailed as failure:
            self._record(
                Tag.CONSOLE_STEP_UP_REFUSED,
                Outcome.DENIED,
                origin,
                f"{action}: {failure.reason}",
                principal=viewer.principal,
                role=str(viewer.role),
                session_id=viewer.session_id,
            )
            raise StepUpRefused(action) from None

    def last_seen(self, session_ids: list[str]) -> dict[str, int]:
        """When each console session among ``session_ids`` was last used."""
        if not session_ids:
            return {}
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(console_session.c.session_id, console_session.c.last_seen_us).where(
                    console_session.c.session_id.in_(session_ids)
                )
            ).all()
        return {row.session_id: int(row.last_seen_us) for row in rows}

    def set_language(self, account_id: str, language: str) -> None:
        if language not in LANGUAGES:
            raise ValueError(f"the console speaks {', '.join(LANGUAGES)}")
        values = {"language": language, "updated_us": to_micros(self.clock())}
        with write_transaction(self.engine) as connection:
            dialect = connection.dialect.name
            module = postgresql if dialect == "postgresql" else sqlite
            statement = module.insert(console_preference).values(account_id=account_id, **values)
            connection.execute(
                statement.on_conflict_do_update(index_elements=["account_id"], set_=values)
            )


class StepUpRefused(Exception):
    """A sensitive console action without a fresh, valid code from the person's own
    authenticator: refused and recorded."""
