"""Sessions, access tokens and rotating refresh tokens.

A session is what a sign-in (or a client-credentials grant) opens. Access tokens
are short-lived JWTs naming the session; refresh tokens are random, stored only
as hashes, and rotate on every use — presenting a used one again revokes the
whole session, as RFC 9700 (OAuth security BCP) advises. ``state`` tells the
gate whether a session is still live; it re-reads the database at least every
``check_seconds``, so a suspension or revocation takes effect within that time
in every server process.

Each session's row is sealed (an HMAC, under a key derived from the index key, of whom
it acts for, through which client, with which scopes and patient, until when, and
whether it is revoked or waits for a step-up): someone who may write to the database but
holds no key, who moved a session to another account, lengthened it, un-revoked it or
cleared its step-up, had the token it held act so at once (adversary round 70: Tuen
Mun's front desk read Tsuen Wan's patient as Tsuen Wan's doctor). A session whose row
does not match is refused, and reported once a process (``session_altered``).

A seal says a row is as CareVault once wrote it, not that it is the latest: a row saved
before a revocation or a step-up and written back after, seal and all, lived again
(review of round 70). Each revocation, step-up asked and step-up met is written, inside
its transaction, to the register beside the keyring (``keys.revocations``), and what the
register says wins over the row (``_recorded``); a row that says less is told once
(``session_written_back``).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, insert, select, update

from carevault.access.accounts import ACCOUNT_ALTERED
from carevault.access.clients import CLIENT_ALTERED
from carevault.access.tables import auth_session, client_app, refresh_token, staff_account
from carevault.access.tokens import TokenSigner
from carevault.clock import Clock, to_micros, utc_now
from carevault.db import read_transaction, refuse_on_the_loop, write_transaction
from carevault.keys.anchors import seal_fields, seal_matches, seal_unsealed
from carevault.keys.revocations import (
    AFTER_EXPIRY_US,
    WRITTEN_BACK_AFTER_US,
    RevocationRegister,
    met_line,
    revoked_line,
    step_up_line,
)

log = logging.getLogger("carevault.access")


class RefreshRefused(Exception):
    def __init__(self, reason: str, session_id: str | None = None, *, reused: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.session_id = session_id
        #: A used (rotated) refresh token came back: its session has been revoked.
        self.reused = reused


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str | None
    scope: str
    session_id: str
    #: The patient in context (a patient launch): the logical id the app is told.
    patient_id: str | None = None


@dataclass(frozen=True)
class LaunchPatient:
    """The patient a user chose at a patient launch: the id the app sees, and the
    pseudonym the gate confines ``patient/`` scopes to."""

    patient_id: str
    pseudonym: str


@dataclass(frozen=True)
class SessionState:
    """A session and who it acts for: the account's role and clinics, or the client's
    (a client-credentials session of a bound client: what the client and its integration
    account both allow). ``client_scopes``: what the client is registered for now."""

    session_id: str
    live: bool
    reason: str
    account_id: str | None
    client_id: str
    scopes: str
    username: str | None = None
    role: str | None = None
    clinic_ids: frozenset[str] = frozenset()
    practitioner_id: str | None = None
    client_scopes: str = ""
    patient_pseudonym: str | None = None
    #: The session must present a fresh TOTP code before more data (an alert's response).
    step_up: bool = False


@dataclass(frozen=True)
class SessionInfo:
    session_id: str
    client_id: str
    created_us: int
    last_used_us: int
    expires_us: int
    source_address: str | None
    user_agent: str | None
    revoked: bool
    account_id: str | None = None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


#: Why a session whose row does not match its seal is refused.
SESSION_ALTERED = "session record altered in the database"

#: Why a session the register beside the keyring names as revoked is refused though its
#: row says it is live (a row written back over its revocation).
REVOKED_IN_REGISTER = "session revoked (as the register beside the keyring holds)"

#: Why every session is refused while the register beside the keyring cannot be read.
REGISTER_UNREADABLE = "the revocations' register beside the keyring cannot be read"


#: Why a refresh token whose row does not match its seal is refused.
REFRESH_ALTERED = "refresh token record altered in the database"


def refresh_seal(
    key: bytes, token_hash: str, session_id: str, issued_us: int, expires_us: int
) -> bytes:
    """The seal of a ``refresh_token`` row: which token (its hash), for which session,
    from when until when (not whether it was used)."""
    return seal_fields(key, "carevault-refresh/1", [token_hash, session_id, issued_us, expires_us])


def session_seal(key: bytes, row: Any) -> bytes:
    """The seal of what an ``auth_session`` row lets its token do: whom it acts for,
    through which client, with which scopes and patient, until when, whether it is
    revoked and whether it waits for a step-up (not when it was last used, nor the
    revocation's words)."""
    fields: list[object] = [
        row.session_id,
        row.account_id,
        row.client_id,
        row.scopes,
        row.patient_id,
        row.patient_pseudonym,
        row.created_us,
        row.expires_us,
        row.revoked_us is not None,
        row.step_up_us is not None,
    ]
    return seal_fields(key, "carevault-session/1", fields)


class Sessions:
    def __init__(
        self,
        engine: Engine,
        signer: TokenSigner,
        *,
        access_seconds: int,
        refresh_seconds: int,
        session_seconds: int,
        check_seconds: float = 0.25,
        clock: Clock = utc_now,
    ) -> None:
        self.engine = engine
        self.signer = signer
        self.access_seconds = access_seconds
        self.refresh_seconds = refresh_seconds
        self.session_seconds = session_seconds
        self.check_seconds = check_seconds
        self.clock = clock
        self._cache: dict[str, tuple[float, SessionState]] = {}
        self._lock = threading.Lock()
        self._loading = [threading.Lock() for _ in range(64)]
        #: Whether a session's account row is as CareVault wrote it (``StaffAccounts``'s
        #: seal, adversary round 69), and whom to tell, once a process, of an account
        #: that is not; both set by the composition root.
        self.account_genuine: Callable[[Any], bool] | None = None
        self.account_altered: Callable[[str], None] | None = None
        self._told: set[str] = set()
        #: Whether a session's client app row is as CareVault wrote it (``ClientApps``'s
        #: seal, adversary round 70; it tells of one that is not), and the app's bound
        #: integration account's row (``StaffAccounts``). Set by the composition root.
        self.client_genuine: Callable[[Any], bool] | None = None
        self.bound_genuine: Callable[[Any], bool] | None = None
        #: The key sessions are sealed with (``session_seal``; None with encryption off),
        #: whether every session has been sealed, and whom to tell of one that does not
        #: match: set by the composition root.
        self.seal_key: bytes | None = None
        self.all_sealed = False
        self.session_altered: Callable[[str], None] | None = None
        self._told_sessions: set[str] = set()
        #: The register of revocations and step-ups beside the keyring
        #: (``keys.revocations``), whom to tell of a row written back over what it holds
        #: (the session and what the row lifted: "revocation" or "step-up"), and of the
        #: register not written or not read; set by the composition root where rows are
        #: sealed.
        self.register: RevocationRegister | None = None
        self.session_written_back: Callable[[str, str], None] | None = None
        self.register_failed: Callable[[str], None] | None = None
        self._told_back: set[tuple[str, str]] = set()
        self._told_failed: set[str] = set()

    # --- the session's seal ------------------------------------------------------------

    def _seal(self, row: Any) -> bytes | None:
        return None if self.seal_key is None else session_seal(self.seal_key, row)

    def _genuine(self, row: Any) -> bool:
        """Whether the session's own columns are as CareVault wrote them (always, with no
        key); one that is not is reported once a process."""
        expected = self._seal(row)
        if expected is None:
            return True
        ok = seal_matches(row.seal, expected, self.all_sealed)
        if not ok and row.session_id not in self._told_sessions:
            self._told_sessions.add(row.session_id)
            if self.session_altered is not None:
                self.session_altered(str(row.session_id))
        return ok

    def _reseal(
        self,
        connection: Connection,
        where: ColumnElement[bool],
        *,
        scope: ColumnElement[bool] | None = None,
        **values: Any,
    ) -> int:
        """Set ``values`` on the sessions ``where`` selects, each sealed anew as it will
        stand; returns how many. A row that does not match its seal keeps its old seal:
        revoking or stepping up an altered session does not make it genuine.

        ``scope``: the sessions the change is meant for, ``where`` without its "still
        live" conditions. Those of them that do not match their seals are written to
        the register too, though not changed: an insider who marked the row revoked (or
        expired) before the revocation, to keep it out of ``where``, then wrote the
        saved genuine row back, had the session live again (review of stop 57)."""
        statement = select(auth_session).where(where)
        if connection.dialect.name == "postgresql":
            statement = statement.with_for_update()
        rows = connection.execute(statement).all()
        recorded = list(rows)
        if scope is not None and self.register is not None:
            selected = {row.session_id for row in rows}
            recorded.extend(
                row
                for row in connection.execute(select(auth_session).where(scope)).all()
                if row.session_id not in selected and not self._genuine(row)
            )
        self._record(recorded, values)
        for row in rows:
            changed = dict(row._mapping) | values
            seal = row.seal if not self._genuine(row) else self._seal(_Row(changed))
            connection.execute(
                update(auth_session)
                .where(auth_session.c.session_id == row.session_id)
                .values(**values, seal=seal)
            )
        return len(rows)

    # --- the register beside the keyring ----------------------------------------------

    def _record(self, rows: Sequence[Any], values: dict[str, Any]) -> None:
        """Write what ``values`` do to ``rows`` (a revocation, a step-up asked or met) to
        the register, inside the transaction that does it, before its commit: a crash
        between the two leaves a revocation or step-up the database never committed,
        which the register keeps (the safe side), never one the database holds and the
        register does not. A register that cannot be written does not stop it (the row
        says it): logged and told (``register_failed``)."""
        if self.register is None or not rows:
            return
        now_us = to_micros(self.clock())
        if values.get("revoked_us") is not None:
            what = "a session's revocation"
            lines = [
                revoked_line(row.session_id, values["revoked_us"], self._until(row, now_us))
                for row in rows
            ]
        elif values.get("step_up_us") is not None:
            what = "a session's step-up"
            lines = [
                step_up_line(row.session_id, values["step_up_us"], self._until(row, now_us))
                for row in rows
            ]
        elif "step_up_us" in values:
            what = "a session's step-up met"
            lines = []
            for row in rows:
                asked = set(self._asked(row.session_id))
                if row.step_up_us is not None:
                    asked.add(row.step_up_us)
                if asked:
                    lines.append(met_line(row.session_id, asked, self._until(row, now_us)))
        else:
            return
        try:
            self.register.append(lines)
        except OSError as error:
            self._failed(f"not written: {what}", error)

    def _until(self, row: Any, now_us: int) -> int:
        """The expiry a register line holds for the session: its row's, sealed; for a row
        that does not match its seal, the latest any genuine row could hold (a session
        never outlives its longest life from now), never what the row says: an insider
        writing rows that expire in 2^62 would have kept their lines for good."""
        if self._genuine(row):
            return int(row.expires_us)
        return now_us + self.session_seconds * 1_000_000

    def _asked(self, session_id: str) -> frozenset[int]:
        assert self.register is not None  # noqa: S101 - only called with a register
        try:
            return self.register.step_ups(session_id)
        except OSError as error:
            self._failed("not read", error)
            return frozenset()

    def _failed(self, what: str, error: OSError) -> None:
        log.error(
            "the revocations' register beside the keyring: %s: %s",
            what,
            error.strerror or type(error).__name__,
        )
        if what not in self._told_failed:
            self._told_failed.add(what)
            if self.register_failed is not None:
                self.register_failed(what)

    def _recorded(self, row: Any) -> tuple[str, bool]:
        """What the register holds against the session's row: why it may not act though
        its row says it may (revoked, or the register unreadable: every session is then
        refused, the safe side), and whether a step-up asked is still due though the row
        no longer says so. A row saying less than the register was written back (or the
        transaction that wrote the later row never committed): told once a process, and
        only ``WRITTEN_BACK_AFTER_US`` after the line (a revocation being committed in
        another process is no row written back)."""
        if self.register is None:
            return "", False
        try:
            revoked_us, asked = self.register.session(row.session_id)
        except OSError as error:
            self._failed("not read", error)
            return REGISTER_UNREADABLE, False
        if revoked_us is not None and row.revoked_us is None:
            self._written_back(str(row.session_id), "revocation", revoked_us)
            return REVOKED_IN_REGISTER, False
        if asked and row.step_up_us is None and row.revoked_us is None:
            self._written_back(str(row.session_id), "step-up", max(asked))
            return "", True
        return "", False

    def _written_back(self, session_id: str, lifted: str, at_us: int) -> None:
        told = (session_id, lifted)
        if told in self._told_back or to_micros(self.clock()) - at_us < WRITTEN_BACK_AFTER_US:
            return
        self._told_back.add(told)
        log.error("session %s: its row was written back over its %s: kept", session_id, lifted)
        if self.session_written_back is not None:
            self.session_written_back(session_id, lifted)

    def record_standing(self) -> int:
        """Write every revocation and step-up the sealed rows hold to the register (once,
        when the register begins: those made before it), but for sessions whose lines
        would already be pruned; returns how many lines."""
        if self.register is None:
            return 0
        now_us = to_micros(self.clock())
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(auth_session).where(
                    auth_session.c.revoked_us.is_not(None) | auth_session.c.step_up_us.is_not(None),
                    auth_session.c.expires_us > now_us - AFTER_EXPIRY_US,
                )
            ).all()
        lines = [
            revoked_line(row.session_id, row.revoked_us, row.expires_us)
            if row.revoked_us is not None
            else step_up_line(row.session_id, row.step_up_us, row.expires_us)
            for row in rows
            if self._genuine(row)
        ]
        self.register.append(lines)
        return len(lines)

    def seal_unsealed(self) -> int:
        """Seal every session that has no seal, as it stands (once, when sealing
        begins); returns how many."""
        if self.seal_key is None:
            return 0
        return seal_unsealed(self.engine, auth_session, [auth_session.c.session_id], self._seal)

    # --- sessions ----------------------------------------------------------------------

    def open(
        self,
        *,
        subject: str,
        account_id: str | None,
        client_id: str,
        scope: str,
        with_refresh: bool,
        source_address: str | None,
        user_agent: str | None,
        patient: LaunchPatient | None = None,
    ) -> TokenPair:
        # Never led by "-": an officer ends a session by its id on the command line
        # (``carevault staff end-session ID``), where a leading dash reads as an option.
        session_id = "s" + secrets.token_urlsafe(24)
        now_us = to_micros(self.clock())
        values: dict[str, Any] = {
            "session_id": session_id,
            "account_id": account_id,
            "client_id": client_id,
            "scopes": scope,
            "created_us": now_us,
            "expires_us": now_us + self.session_seconds * 1_000_000,
            "last_used_us": now_us,
            "revoked_us": None,
            "revoke_reason": None,
            "source_address": (source_address or "")[:64] or None,
            "user_agent": (user_agent or "")[:300] or None,
            "patient_id": patient.patient_id if patient else None,
            "patient_pseudonym": patient.pseudonym if patient else None,
            "step_up_us": None,
        }
        with write_transaction(self.engine) as connection:
            connection.execute(insert(auth_session).values(**values, seal=self._seal(_Row(values))))
            refresh = self._new_refresh(connection, session_id, now_us) if with_refresh else None
        return self._pair(
            subject,
            session_id,
            client_id,
            scope,
            refresh,
            now_us,
            patient.patient_id if patient else None,
        )

    def _pair(
        self,
        subject: str,
        session_id: str,
        client_id: str,
        scope: str,
        refresh: str | None,
        now_us: int,
        patient_id: str | None = None,
    ) -> TokenPair:
        access = self.signer.issue(
            subject=subject,
            session_id=session_id,
            scope=scope,
            client_id=client_id,
            now=now_us // 1_000_000,
            lifetime=self.access_seconds,
        )
        return TokenPair(access, self.access_seconds, refresh, scope, session_id, patient_id)

    def _new_refresh(self, connection: Connection, session_id: str, now_us: int) -> str:
        token = secrets.token_urlsafe(32)
        hashed = token_hash(token)
        expires_us = now_us + self.refresh_seconds * 1_000_000
        connection.execute(
            insert(refresh_token).values(
                token_hash=hashed,
                session_id=session_id,
                issued_us=now_us,
                expires_us=expires_us,
                used_us=None,
                seal=self._refresh_seal(hashed, session_id, now_us, expires_us),
            )
        )
        return token

    def _refresh_seal(
        self, hashed: str, session_id: str, issued_us: Any, expires_us: Any
    ) -> bytes | None:
        if self.seal_key is None:
            return None
        return refresh_seal(self.seal_key, hashed, session_id, issued_us, expires_us)

    def _refresh_genuine(self, row: Any) -> bool:
        """Whether a ``refresh_token`` row is as CareVault wrote it (always, with no
        key): one inserted, or moved to another session, refreshes nothing."""
        expected = self._refresh_seal(
            row.token_hash, row.session_id, row.issued_us, row.refresh_expires_us
        )
        return expected is None or seal_matches(row.refresh_seal, expected, self.all_sealed)

    def seal_unsealed_refresh(self) -> int:
        """Seal every refresh token that has no seal, as it stands (once)."""
        if self.seal_key is None:
            return 0
        return seal_unsealed(
            self.engine,
            refresh_token,
            [refresh_token.c.token_hash],
            lambda row: self._refresh_seal(
                row.token_hash, row.session_id, row.issued_us, row.expires_us
            ),
        )

    def refresh(
        self,
        token: str,
        client_id: str,
        narrowed: Callable[[str], str] | None = None,
    ) -> tuple[TokenPair, str | None]:
        """A new token pair for a refresh token; returns it and the session's account id.
        ``narrowed``: the new access token's scope from the session's (a client asking
        for less, RFC 6749 section 6); what it raises refuses the refresh before the token
        is spent. The session and the new refresh token keep the session's scope."""
        now_us = to_micros(self.clock())
        new_refresh: str | None = None
        scope: str | None = None
        with write_transaction(self.engine) as connection:
            row = connection.execute(
                select(
                    refresh_token.c.token_hash,
                    refresh_token.c.issued_us,
                    refresh_token.c.seal.label("refresh_seal"),
                    refresh_token.c.used_us,
                    refresh_token.c.expires_us.label("refresh_expires_us"),
                    auth_session.c.session_id,
                    auth_session.c.account_id,
                    auth_session.c.client_id,
                    auth_session.c.scopes,
                    auth_session.c.patient_id,
                    auth_session.c.revoked_us,
                    auth_session.c.step_up_us,
                    auth_session.c.expires_us.label("session_expires_us"),
                )
                .join(auth_session, auth_session.c.session_id == refresh_token.c.session_id)
                .where(refresh_token.c.token_hash == token_hash(token))
            ).first()
            if row is None:
                raise RefreshRefused("unknown refresh token")
            if not self._refresh_genuine(row):
                raise RefreshRefused(REFRESH_ALTERED, row.session_id)
            if row.client_id != client_id:
                raise RefreshRefused("refresh token of another client", row.session_id)
            reused = row.used_us is not None
            if not reused:
                if (
                    row.refresh_expires_us <= now_us
                    or row.session_expires_us <= now_us
                    or row.revoked_us is not None
                    or self._recorded(row)[0]
                ):
                    raise RefreshRefused("refresh token expired or session ended", row.session_id)
                scope = narrowed(row.scopes) if narrowed is not None else row.scopes
                # The guard on used_us makes the loser of two concurrent uses a reuse.
                reused = (
                    connection.execute(
                        update(refresh_token)
                        .where(
                            refresh_token.c.token_hash == token_hash(token),
                            refresh_token.c.used_us.is_(None),
                        )
                        .values(used_us=now_us)
                    ).rowcount
                    != 1
                )
            if reused:
                self._reseal(
                    connection,
                    (auth_session.c.session_id == row.session_id)
                    & auth_session.c.revoked_us.is_(None),
                    scope=auth_session.c.session_id == row.session_id,
                    revoked_us=now_us,
                    revoke_reason="refresh token reused",
                )
            else:
                connection.execute(
                    update(auth_session)
                    .where(auth_session.c.session_id == row.session_id)
                    .values(last_used_us=now_us)
                )
                new_refresh = self._new_refresh(connection, row.session_id, now_us)
        if reused:
            # Refused only once the revocation is committed: raising inside the
            # transaction would roll it back and leave the session live.
            self._forget(row.session_id)
            raise RefreshRefused(
                "refresh token reused: session revoked", row.session_id, reused=True
            )
        state = self.state(row.session_id, fresh=True)
        if not state.live:
            raise RefreshRefused(state.reason, row.session_id)
        subject = row.account_id or row.client_id
        return self._pair(
            subject,
            row.session_id,
            row.client_id,
            scope or row.scopes,
            new_refresh,
            now_us,
            row.patient_id,
        ), row.account_id

    def revoke(self, session_id: str, reason: str) -> bool:
        with write_transaction(self.engine) as connection:
            changed = self._reseal(
                connection,
                (auth_session.c.session_id == session_id) & auth_session.c.revoked_us.is_(None),
                scope=auth_session.c.session_id == session_id,
                revoked_us=to_micros(self.clock()),
                revoke_reason=reason[:200],
            )
        self._forget(session_id)
        return changed == 1

    def client_of_refresh_token(self, token: str) -> str | None:
        """The client a refresh token was issued to, or None if it is not one: how a
        public app that refreshes without naming itself is known. Spends nothing."""
        with read_transaction(self.engine) as connection:
            client_id = connection.execute(
                select(auth_session.c.client_id)
                .select_from(
                    refresh_token.join(
                        auth_session, auth_session.c.session_id == refresh_token.c.session_id
                    )
                )
                .where(refresh_token.c.token_hash == token_hash(token))
            ).scalar()
        return None if client_id is None else str(client_id)

    def revoke_refresh_token(self, token: str, client_id: str, reason: str) -> str | None:
        """Revoke the session a refresh token belongs to, if it was issued to ``client_id``
        (RFC 7009 §2.1: a client revokes only its own tokens); the session's id, if so."""
        with read_transaction(self.engine) as connection:
            session_id = connection.execute(
                select(refresh_token.c.session_id)
                .select_from(
                    refresh_token.join(
                        auth_session, auth_session.c.session_id == refresh_token.c.session_id
                    )
                )
                .where(
                    refresh_token.c.token_hash == token_hash(token),
                    auth_session.c.client_id == client_id,
                )
            ).scalar()
        if session_id is None:
            return None
        self.revoke(str(session_id), reason)
        return str(session_id)

    def revoke_all(
        self, *, account_id: str | None = None, client_id: str | None = None, reason: str
    ) -> int:
        condition = (
            auth_session.c.account_id == account_id
            if account_id is not None
            else auth_session.c.client_id == client_id
        )
        with write_transaction(self.engine) as connection:
            changed = self._reseal(
                connection,
                condition & auth_session.c.revoked_us.is_(None),
                scope=condition,
                revoked_us=to_micros(self.clock()),
                revoke_reason=reason[:200],
            )
        with self._lock:
            self._cache.clear()
        return changed

    def list_for(self, account_id: str, *, live_only: bool = True) -> list[SessionInfo]:
        now_us = to_micros(self.clock())
        statement = select(auth_session).where(auth_session.c.account_id == account_id)
        if live_only:
            statement = statement.where(
                auth_session.c.revoked_us.is_(None), auth_session.c.expires_us > now_us
            )
        with read_transaction(self.engine) as connection:
            rows = connection.execute(statement.order_by(auth_session.c.created_us.desc())).all()
        return [
            SessionInfo(
                session_id=row.session_id,
                client_id=row.client_id,
                created_us=row.created_us,
                last_used_us=row.last_used_us,
                expires_us=row.expires_us,
                source_address=row.source_address,
                user_agent=row.user_agent,
                revoked=row.revoked_us is not None,
            )
            for row in rows
        ]

    def issued(self, session_ids: Collection[str]) -> set[str]:
        """Those of ``session_ids`` ever issued, live or not: a session's row is written
        when it is opened and is never deleted (expiry, revocation, sign-out and an idle
        console only mark it), so this is every session the audit ledger can name."""
        wanted = sorted(set(session_ids))
        if not wanted:
            return set()
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(auth_session.c.session_id).where(auth_session.c.session_id.in_(wanted))
            ).scalars()
            return {str(session_id) for session_id in rows}

    def live(self) -> list[SessionInfo]:
        """Every live session of a staff account, newest first: who is signed in now."""
        now_us = to_micros(self.clock())
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(auth_session)
                .where(
                    auth_session.c.account_id.is_not(None),
                    auth_session.c.revoked_us.is_(None),
                    auth_session.c.expires_us > now_us,
                )
                .order_by(auth_session.c.created_us.desc())
            ).all()
        return [
            SessionInfo(
                session_id=row.session_id,
                client_id=row.client_id,
                created_us=row.created_us,
                last_used_us=row.last_used_us,
                expires_us=row.expires_us,
                source_address=row.source_address,
                user_agent=row.user_agent,
                revoked=False,
                account_id=row.account_id,
            )
            for row in rows
        ]

    def require_step_up(self, *, account_id: str, reason: str) -> int:
        """Every live session of the account must present a fresh TOTP code before more
        data (``stepped_up``); returns how many. The person stays signed in."""
        now_us = to_micros(self.clock())
        with write_transaction(self.engine) as connection:
            changed = self._reseal(
                connection,
                (auth_session.c.account_id == account_id)
                & auth_session.c.revoked_us.is_(None)
                & (auth_session.c.expires_us > now_us),
                scope=auth_session.c.account_id == account_id,
                step_up_us=now_us,
            )
        with self._lock:
            self._cache.clear()
        return changed

    def stepped_up(self, session_id: str) -> None:
        """The session presented a fresh TOTP code: it may go on."""
        with write_transaction(self.engine) as connection:
            self._reseal(connection, auth_session.c.session_id == session_id, step_up_us=None)
        self._forget(session_id)

    def _forget(self, session_id: str) -> None:
        with self._lock:
            self._cache.pop(session_id, None)

    def state(self, session_id: str, *, fresh: bool = False) -> SessionState:
        """Whether the session may still be used; at most ``check_seconds`` stale."""
        now = time.monotonic()
        if fresh:
            return self._reload(session_id, now)
        known = self._cached(session_id, now)
        if known is not None:
            return known
        refuse_on_the_loop("a session's state")
        # One read per session at a time: when a busy session's state expires, the
        # requests that find it stale wait for one read (and take its answer, no older
        # than they may accept) instead of each making the same read.
        with self._loading[hash(session_id) % len(self._loading)]:
            known = self._cached(session_id, now)
            if known is not None:
                return known
            return self._reload(session_id, time.monotonic())

    def _cached(self, session_id: str, asked: float) -> SessionState | None:
        """The cached state if it was read less than ``check_seconds`` before ``asked``."""
        with self._lock:
            cached = self._cache.get(session_id)
        if cached is not None and asked - cached[0] < self.check_seconds:
            return cached[1]
        return None

    def _reload(self, session_id: str, now: float) -> SessionState:
        state = self._load(session_id)
        with self._lock:
            self._cache[session_id] = (now, state)
            if len(self._cache) > 100_000:
                self._cache.clear()
        return state

    def standing(self, session_id: str) -> str:
        """Why the principal behind ``session_id`` may no longer act, read now (never
        from the cache); empty if it still may. The same rules as a request's token
        meets, but the session's expiry is not held against it: work that outlives its
        token (an approved export) stops when the session is revoked, or its account or
        client app suspended or revoked, not when the token would have run out."""
        row = self._row(session_id)
        if row is None:
            return "unknown session"
        return (
            _why_not_live(row, to_micros(self.clock()), expiry=False)
            or self._altered(row)
            or self._recorded(row)[0]
        )

    def _altered(self, row: Any) -> str:
        """Why the session may not act if a row it stands on was edited without the key:
        its account's (its role, clinics or practitioner), its client app's (adversary
        round 70), or the account the app acts for; each told once a process; else
        empty. The session's own row first (whom it acts for, its scopes or patient, its
        revocation or step-up)."""
        if not self._genuine(row):
            return SESSION_ALTERED
        if row.account_id is not None:
            if self.account_genuine is None or self.account_genuine(row):
                return ""
            self._tell(str(row.account_id))
            return ACCOUNT_ALTERED
        if (
            row.client_kind is not None
            and self.client_genuine is not None
            and not self.client_genuine(row)
        ):
            return CLIENT_ALTERED
        if (
            row.bound_account_id is not None
            and self.bound_genuine is not None
            and not self.bound_genuine(row)
        ):
            self._tell(str(row.bound_account_id))
            return ACCOUNT_ALTERED
        return ""

    def _tell(self, account_id: str) -> None:
        if account_id not in self._told:
            self._told.add(account_id)
            if self.account_altered is not None:
                self.account_altered(account_id)

    def _load(self, session_id: str) -> SessionState:
        now_us = to_micros(self.clock())
        row = self._row(session_id)
        if row is None:
            return SessionState(session_id, False, "unknown session", None, "", "")
        why = _why_not_live(row, now_us) or self._altered(row)
        kept, step_up = ("", False) if why else self._recorded(row)
        reason = why or kept
        clinics = _clinics(row.staff_clinics if row.account_id else row.client_clinics)
        if row.account_id is None and row.bound_account_id is not None:
            clinics &= _clinics(row.bound_clinics)
        return SessionState(
            session_id,
            not reason,
            reason or "live",
            row.account_id,
            row.client_id,
            row.scopes,
            username=row.username,
            role=row.role if row.account_id else "integration",
            clinic_ids=clinics,
            practitioner_id=row.practitioner_id,
            client_scopes=row.client_scopes or "",
            patient_pseudonym=row.patient_pseudonym,
            step_up=row.step_up_us is not None or step_up,
        )

    def _row(self, session_id: str) -> Any:
        bound = staff_account.alias("bound_account")
        with read_transaction(self.engine) as connection:
            return connection.execute(
                select(
                    auth_session,
                    staff_account.c.suspended_us,
                    staff_account.c.username,
                    staff_account.c.role,
                    staff_account.c.clinic_ids.label("staff_clinics"),
                    staff_account.c.practitioner_id,
                    staff_account.c.seal.label("staff_seal"),
                    client_app.c.kind.label("client_kind"),
                    client_app.c.scopes.label("client_scopes"),
                    client_app.c.revoked_us.label("client_revoked_us"),
                    client_app.c.clinic_ids.label("client_clinics"),
                    client_app.c.account_id.label("bound_account_id"),
                    # The rest of what the app's seal covers (``clients.SESSION_LABELS``).
                    client_app.c.name.label("client_name"),
                    client_app.c.secret_hash.label("client_secret_hash"),
                    client_app.c.redirect_uris.label("client_redirect_uris"),
                    client_app.c.jwks.label("client_jwks"),
                    client_app.c.seal.label("client_seal"),
                    bound.c.role.label("bound_role"),
                    bound.c.suspended_us.label("bound_suspended_us"),
                    bound.c.clinic_ids.label("bound_clinics"),
                    bound.c.username.label("bound_username"),
                    bound.c.practitioner_id.label("bound_practitioner_id"),
                    bound.c.seal.label("bound_seal"),
                )
                .outerjoin(staff_account, staff_account.c.account_id == auth_session.c.account_id)
                .outerjoin(client_app, client_app.c.client_id == auth_session.c.client_id)
                .outerjoin(bound, bound.c.account_id == client_app.c.account_id)
                .where(auth_session.c.session_id == session_id)
            ).first()


class _Row:
    """Columns by attribute, as a fetched row gives them (``session_seal`` of a row
    about to be written)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def _clinics(text: str | None) -> frozenset[str]:
    return frozenset(filter(None, (text or "").split(",")))


#: The console's own sessions: a first-party client that is not a registered app (no
#: grant of the token endpoint ever issues to it).
CONSOLE_CLIENT = "carevault-console"


def _why_not_live(row: Any, now_us: int, *, expiry: bool = True) -> str:
    """Why a session can no longer be used; empty if it can (``expiry``: False to judge
    the principal behind a session whose token may have run out)."""
    if row.revoked_us is not None:
        return f"session revoked ({row.revoke_reason or 'no reason given'})"
    if expiry and row.expires_us <= now_us:
        return "session expired"
    if row.suspended_us is not None:
        return "account suspended"
    if row.client_kind is None and row.client_id != CONSOLE_CLIENT:
        return "client app no longer registered"
    if row.client_revoked_us is not None:
        return "client app revoked"
    if row.account_id is not None and row.role == "integration":
        # Opened through a user app before integration accounts were refused there.
        return "integration account signed in through a user app"
    if row.account_id is None:
        if row.client_kind != "confidential":
            return "client credentials of a public app"
        if row.bound_account_id is not None and row.bound_role != "integration":
            return "the app's integration account is missing"
        if row.bound_suspended_us is not None:
            return "the app's integration account is suspended"
    return ""
