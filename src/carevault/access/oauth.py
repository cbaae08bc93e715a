"""OAuth 2.0 as SMART App Launch v2 uses it: authorization code with PKCE for user
apps, client credentials for integration services, refresh-token rotation,
revocation (RFC 7009), and — only where configuration allows it — a direct
username + password + TOTP grant for scripts and tests.

Every outcome is handed to the audit trail with its real reason; clients get the
RFC 6749 error codes and nothing that says whether an account exists.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from sqlalchemy import Engine, insert, select, update

from carevault.access import pkce
from carevault.access import scopes as smart
from carevault.access.accounts import Account, SignInFailed, StaffAccounts
from carevault.access.clients import ClientApp, ClientApps
from carevault.access.sessions import RefreshRefused, Sessions, TokenPair
from carevault.access.tables import auth_code
from carevault.clock import Clock, to_micros, utc_now
from carevault.db import read_transaction, write_transaction
from carevault.domain.roles import Role
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.trail import AuditTrail

CODE_SECONDS = 60


class OAuthError(Exception):
    """An RFC 6749 error response. ``reason`` (for the audit) may say more than ``description``."""

    def __init__(
        self, error: str, description: str, status: int = 400, reason: str | None = None
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.reason = reason or description


@dataclass(frozen=True)
class AuthorizeRequest:
    client: ClientApp
    redirect_uri: str
    scope: smart.Scopes
    state: str
    code_challenge: str


@dataclass(frozen=True)
class Origin:
    source_address: str | None
    user_agent: str | None


class OAuth:
    def __init__(
        self,
        engine: Engine,
        accounts: StaffAccounts,
        clients: ClientApps,
        sessions: Sessions,
        audit: AuditTrail,
        *,
        direct_grant: bool,
        clock: Clock = utc_now,
    ) -> None:
        self.engine = engine
        self.accounts = accounts
        self.clients = clients
        self.sessions = sessions
        self.audit = audit
        self.direct_grant = direct_grant
        self.clock = clock

    def _record(
        self,
        tag: Tag,
        outcome: Outcome,
        origin: Origin,
        reason: str,
        detail: dict[str, object] | None = None,
        **who: str | None,
    ) -> None:
        self.audit.record(
            [
                AuditEvent(
                    tag=tag,
                    outcome=outcome,
                    at_us=to_micros(self.clock()),
                    principal=who.get("principal"),
                    client_id=who.get("client_id"),
                    session_id=who.get("session_id"),
                    source_address=origin.source_address,
                    user_agent=(origin.user_agent or "")[:200] or None,
                    reason=reason,
                    detail=detail or {},
                )
            ]
        )

    # --- authorization code ----------------------------------------------------------------

    def check_authorize(
        self, params: Mapping[str, str], fhir_base: str, origin: Origin
    ) -> AuthorizeRequest:
        """Validate an authorization request for the FHIR server at ``fhir_base``.

        Errors before the redirect URI is trusted are not redirectable (``status`` 400);
        later ones are sent back to the app. Refusals are recorded: an unknown client or
        an unregistered redirect URI is what a phishing or code-theft attempt looks like.
        """
        try:
            return self._check_authorize(params, fhir_base)
        except OAuthError as error:
            self._record(
                Tag.AUTH_TOKEN_REFUSED,
                Outcome.DENIED,
                origin,
                f"authorize: {error.reason}",
                client_id=params.get("client_id") or None,
            )
            raise

    def _check_authorize(self, params: Mapping[str, str], fhir_base: str) -> AuthorizeRequest:
        client = self.clients.get(params.get("client_id", ""))
        if client is None or client.revoked:
            raise OAuthError("invalid_client", "unknown client")
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in client.redirect_uris:
            raise OAuthError("invalid_request", "redirect_uri is not registered for this client")
        if params.get("response_type") != "code":
            raise OAuthError(
                "unsupported_response_type", "only response_type=code is supported", 302
            )
        challenge = params.get("code_challenge", "")
        if params.get("code_challenge_method") != "S256" or not pkce.valid_challenge(challenge):
            raise OAuthError(
                "invalid_request", "PKCE with code_challenge_method=S256 is required", 302
            )
        if params.get("aud", "").rstrip("/") != fhir_base.rstrip("/"):
            raise OAuthError("invalid_request", "aud must be this FHIR server's base URL", 302)
        try:
            requested = smart.parse(
                params.get("scope", ""), allowed_contexts=frozenset({"user", "patient"})
            )
        except smart.InvalidScope as error:
            raise OAuthError("invalid_scope", str(error), 302) from None
        granted = smart.narrow(requested, client.scopes)
        if not granted.grants:
            raise OAuthError(
                "invalid_scope", "none of the requested scopes is allowed for this app", 302
            )
        return AuthorizeRequest(client, redirect_uri, granted, params.get("state", ""), challenge)

    def error_redirect(self, request_params: Mapping[str, str], error: OAuthError) -> str:
        query = {"error": error.error, "error_description": error.description}
        if request_params.get("state"):
            query["state"] = request_params["state"]
        return f"{request_params['redirect_uri']}?{urlencode(query)}"

    def approve(
        self, request: AuthorizeRequest, username: str, password: str, code: str, origin: Origin
    ) -> str:
        """Sign the user in and return where to send the browser (with the code)."""
        account = self._sign_in(username, password, code, origin, request.client.client_id)
        authorization_code = secrets.token_urlsafe(32)
        now_us = to_micros(self.clock())
        with write_transaction(self.engine) as connection:
            connection.execute(
                insert(auth_code).values(
                    code_hash=_hash(authorization_code),
                    client_id=request.client.client_id,
                    account_id=account.account_id,
                    redirect_uri=request.redirect_uri,
                    code_challenge=request.code_challenge,
                    scopes=request.scope.text(),
                    expires_us=now_us + CODE_SECONDS * 1_000_000,
                    used_us=None,
                    session_id=None,
                )
            )
        query = {"code": authorization_code}
        if request.state:
            query["state"] = request.state
        return f"{request.redirect_uri}?{urlencode(query)}"

    def sign_in(
        self, username: str, password: str, code: str, origin: Origin, client_id: str
    ) -> Account:
        """Password and TOTP for a first-party sign-in (the console), with the same
        checks, lockout and audit as the authorize page and the token endpoint."""
        return self._sign_in(username, password, code, origin, client_id)

    def _sign_in(
        self, username: str, password: str, code: str, origin: Origin, client_id: str
    ) -> Account:
        try:
            signed_in = self.accounts.sign_in(username, password, code, origin.source_address)
        except SignInFailed as failure:
            throttled = failure.throttled
            self._record(
                Tag.AUTH_SIGN_IN_THROTTLED if throttled else Tag.AUTH_SIGN_IN_FAILED,
                Outcome.DENIED,
                origin,
                failure.reason,
                detail={"wait_seconds": throttled.wait_seconds} if throttled else None,
                principal=f"staff-account:{failure.account_id}" if failure.account_id else None,
                client_id=client_id,
            )
            raise
        account = signed_in.account
        if signed_in.recovery_code_used:
            self._record(
                Tag.AUTH_RECOVERY_CODE_USED,
                Outcome.SUCCESS,
                origin,
                "a one-time recovery code stood in for the TOTP code",
                detail={"codes_left": signed_in.recovery_codes_left},
                principal=f"staff:{account.username}",
                client_id=client_id,
            )
        self._record(
            Tag.AUTH_SIGNED_IN,
            Outcome.SUCCESS,
            origin,
            "password and recovery code verified"
            if signed_in.recovery_code_used
            else "password and TOTP verified",
            principal=f"staff:{account.username}",
            client_id=client_id,
        )
        return account

    # --- token endpoint --------------------------------------------------------------------

    def token(
        self, form: Mapping[str, str], authorization: str | None, origin: Origin
    ) -> dict[str, object]:
        grant = form.get("grant_type", "")
        account_id: str | None
        reach: dict[str, object] = {}
        try:
            if grant == "authorization_code":
                pair, account_id = self._redeem_code(form, authorization, origin)
            elif grant == "refresh_token":
                pair, account_id = self._refresh(form, authorization, origin)
            elif grant == "client_credentials":
                pair, reach = self._client_credentials(form, authorization, origin)
                account_id = None
            elif grant == "password" and self.direct_grant:
                pair, account_id = self._password(form, origin)
            else:
                raise OAuthError("unsupported_grant_type", "this grant type is not available")
        except OAuthError as error:
            self._record(
                Tag.AUTH_TOKEN_REFUSED,
                Outcome.DENIED,
                origin,
                f"{grant}: {error.reason}",
                client_id=_claimed_client(form, authorization),
            )
            raise
        self._record(
            Tag.AUTH_TOKEN_REFRESHED if grant == "refresh_token" else Tag.AUTH_TOKEN_ISSUED,
            Outcome.SUCCESS,
            origin,
            f"{grant} grant",
            {"scope": pair.scope, **reach},
            session_id=pair.session_id,
            principal=f"staff-account:{account_id}" if account_id else None,
            client_id=_claimed_client(form, authorization),
        )
        body: dict[str, object] = {
            "access_token": pair.access_token,
            "token_type": "Bearer",
            "expires_in": pair.expires_in,
            "scope": pair.scope,
        }
        if pair.refresh_token:
            body["refresh_token"] = pair.refresh_token
        return body

    def _client(self, form: Mapping[str, str], authorization: str | None) -> ClientApp:
        """The calling client: confidential ones must authenticate (Basic or form)."""
        client_id, secret = form.get("client_id", ""), form.get("client_secret")
        if authorization and authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:]).decode()
                client_id, _, secret = decoded.partition(":")
            except (ValueError, UnicodeDecodeError):
                raise OAuthError("invalid_client", "malformed client credentials", 401) from None
        client = self.clients.get(client_id)
        if client is None or client.revoked:
            raise OAuthError(
                "invalid_client", "client authentication failed", 401, "unknown or revoked client"
            )
        if client.confidential and (
            secret is None or self.clients.authenticate(client_id, secret) is None
        ):
            raise OAuthError(
                "invalid_client", "client authentication failed", 401, "wrong client secret"
            )
        return client

    def _redeem_code(
        self, form: Mapping[str, str], authorization: str | None, origin: Origin
    ) -> tuple[TokenPair, str]:
        client = self._client(form, authorization)
        code = form.get("code", "")
        now_us = to_micros(self.clock())
        with read_transaction(self.engine) as connection:
            row = connection.execute(
                select(auth_code).where(auth_code.c.code_hash == _hash(code))
            ).first()
        if row is None:
            raise OAuthError("invalid_grant", "the code is not valid", reason="unknown code")
        if row.used_us is not None:
            # A code used twice was probably intercepted: end what it opened (RFC 6749 §4.1.2).
            if row.session_id:
                self.sessions.revoke(row.session_id, "authorization code replayed")
            raise OAuthError(
                "invalid_grant", "the code is not valid", reason="code used twice; session revoked"
            )
        if row.expires_us <= now_us:
            raise OAuthError("invalid_grant", "the code is not valid", reason="code expired")
        if row.client_id != client.client_id or row.redirect_uri != form.get("redirect_uri"):
            raise OAuthError(
                "invalid_grant", "the code is not valid", reason="client or redirect_uri mismatch"
            )
        verified = pkce.verifier_matches(form.get("code_verifier", ""), row.code_challenge)
        # A code is spent by any attempt that presents it with its client: one shown with
        # the wrong verifier was probably intercepted, and gets no second guess.
        with write_transaction(self.engine) as connection:
            claimed = connection.execute(
                update(auth_code)
                .where(auth_code.c.code_hash == row.code_hash, auth_code.c.used_us.is_(None))
                .values(used_us=now_us)
            ).rowcount
        if not verified:
            raise OAuthError(
                "invalid_grant",
                "the code is not valid",
                reason="PKCE verifier does not match; code spent",
            )
        if claimed != 1:
            raise OAuthError(
                "invalid_grant", "the code is not valid", reason="code used twice (race)"
            )
        account = self.accounts.get(row.account_id)
        if account is None or account.suspended:
            raise OAuthError("invalid_grant", "the code is not valid", reason="account suspended")
        if account.role is Role.INTEGRATION:
            raise OAuthError(
                "invalid_grant", "the code is not valid", reason="integration account in a user app"
            )
        scope = smart.parse(row.scopes, allowed_contexts=frozenset({"user", "patient"}))
        pair = self.sessions.open(
            subject=account.account_id,
            account_id=account.account_id,
            client_id=client.client_id,
            scope=row.scopes,
            with_refresh=scope.wants_refresh,
            # Where the app redeemed the code: how the user recognises the session later.
            source_address=origin.source_address,
            user_agent=origin.user_agent,
        )
        with write_transaction(self.engine) as connection:
            connection.execute(
                update(auth_code)
                .where(auth_code.c.code_hash == row.code_hash)
                .values(session_id=pair.session_id)
            )
        return pair, account.account_id

    def _refresh(
        self, form: Mapping[str, str], authorization: str | None, origin: Origin
    ) -> tuple[TokenPair, str | None]:
        client = self._client(form, authorization)
        try:
            return self.sessions.refresh(form.get("refresh_token", ""), client.client_id)
        except RefreshRefused as refused:
            if refused.reused:
                # A stolen refresh token: name the session it killed, for the incident.
                self._record(
                    Tag.AUTH_REFRESH_REUSED,
                    Outcome.DENIED,
                    origin,
                    refused.reason,
                    session_id=refused.session_id,
                    client_id=client.client_id,
                )
            raise OAuthError(
                "invalid_grant", "the refresh token is not valid", reason=refused.reason
            ) from None

    def _client_credentials(
        self, form: Mapping[str, str], authorization: str | None, origin: Origin
    ) -> tuple[TokenPair, dict[str, object]]:
        """A token for an integration service: only a confidential app, only the system/
        scopes it is registered for; the reach is recorded with the issuance."""
        client = self._client(form, authorization)
        if not client.confidential:
            raise OAuthError("unauthorized_client", "client credentials need a confidential client")
        try:
            requested = smart.parse(form.get("scope", ""), allowed_contexts=frozenset({"system"}))
        except smart.InvalidScope as error:
            raise OAuthError("invalid_scope", str(error)) from None
        granted = smart.narrow(requested, client.scopes)
        if not granted.grants:
            raise OAuthError(
                "invalid_scope", "none of the requested scopes is allowed for this client"
            )
        clinics = client.clinic_ids
        if client.account_id is not None:
            bound = self.accounts.get(client.account_id)
            if bound is None or bound.suspended or bound.role is not Role.INTEGRATION:
                raise OAuthError(
                    "invalid_grant",
                    "this client cannot be used now",
                    reason="the app's integration account is suspended or missing",
                )
            clinics = clinics & bound.clinic_ids
        pair = self.sessions.open(
            subject=client.client_id,
            account_id=None,
            client_id=client.client_id,
            scope=granted.text(),
            with_refresh=False,
            source_address=origin.source_address,
            user_agent=origin.user_agent,
        )
        reach: dict[str, object] = {"clinics": sorted(clinics)}
        if client.account_id is not None:
            reach["account"] = client.account_id
        return pair, reach

    def _password(self, form: Mapping[str, str], origin: Origin) -> tuple[TokenPair, str]:
        client = self._client(form, None)
        try:
            requested = smart.parse(
                form.get("scope", ""), allowed_contexts=frozenset({"user", "patient"})
            )
        except smart.InvalidScope as error:
            raise OAuthError("invalid_scope", str(error)) from None
        granted = smart.narrow(requested, client.scopes)
        if not granted.grants:
            raise OAuthError(
                "invalid_scope", "none of the requested scopes is allowed for this app"
            )
        try:
            account = self._sign_in(
                form.get("username", ""),
                form.get("password", ""),
                form.get("totp", ""),
                origin,
                client.client_id,
            )
        except SignInFailed as failure:
            raise OAuthError("invalid_grant", str(failure), reason=failure.reason) from None
        pair = self.sessions.open(
            subject=account.account_id,
            account_id=account.account_id,
            client_id=client.client_id,
            scope=granted.text(),
            with_refresh=granted.wants_refresh,
            source_address=origin.source_address,
            user_agent=origin.user_agent,
        )
        return pair, account.account_id

    def end_session(self, account_id: str, session_id: str, origin: Origin) -> bool:
        """A signed-in user ends one of their own live sessions (a lost device); False if
        it is not theirs."""
        if not any(item.session_id == session_id for item in self.sessions.list_for(account_id)):
            return False
        self.sessions.revoke(session_id, "ended by its owner")
        self._record(
            Tag.AUTH_SESSION_REVOKED,
            Outcome.SUCCESS,
            origin,
            "ended by its owner",
            principal=f"staff-account:{account_id}",
            session_id=session_id,
        )
        return True

    def revoke(self, form: Mapping[str, str], authorization: str | None, origin: Origin) -> None:
        """RFC 7009: revoke a refresh token's session (an access token's session too)."""
        client = self._client(form, authorization)
        token = form.get("token", "")
        session_id = self.sessions.revoke_refresh_token(
            token, client.client_id, f"revoked by {client.client_id}"
        )
        if session_id is None:
            try:
                claims = self.sessions.signer.verify(token)
            except Exception:  # noqa: BLE001 - RFC 7009: an unknown token is not an error
                claims = None
            if claims is not None and claims.client_id == client.client_id:
                self.sessions.revoke(claims.session_id, f"revoked by {client.client_id}")
                session_id = claims.session_id
        if session_id is not None:
            self._record(
                Tag.AUTH_SESSION_REVOKED,
                Outcome.SUCCESS,
                origin,
                "token revoked",
                session_id=session_id,
                client_id=client.client_id,
            )


def _claimed_client(form: Mapping[str, str], authorization: str | None) -> str | None:
    """The client id a token request names (form or HTTP Basic), for the audit record."""
    if authorization and authorization.lower().startswith("basic "):
        try:
            claimed = base64.b64decode(authorization[6:]).decode().partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            claimed = ""
        return claimed[:64] or None
    return form.get("client_id", "")[:64] or None


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
