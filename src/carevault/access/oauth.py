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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus, urlencode

from sqlalchemy import Engine, insert, select, update

from carevault.access import pkce
from carevault.access import scopes as smart
from carevault.access.accounts import ACCOUNT_ALTERED, Account, SignInFailed, StaffAccounts
from carevault.access.assertions import (
    ASSERTION_TYPE,
    AssertionRefused,
    ClientAssertions,
    claimed_client,
)
from carevault.access.clients import ClientApp, ClientApps, redirect_uri_refusal
from carevault.access.identity import Identity, IdTokens
from carevault.access.sessions import LaunchPatient, RefreshRefused, Sessions, TokenPair
from carevault.access.tables import auth_code
from carevault.clock import Clock, to_micros, utc_now
from carevault.db import read_transaction, write_transaction
from carevault.domain.roles import Role
from carevault.keys.anchors import seal_fields, seal_matches, seal_unsealed
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.trail import AuditTrail

CODE_SECONDS = 60
#: How long a user may take to choose the patient of a patient launch.
PICKER_SECONDS = 600
_PICKING = "picking"
_MAX_NONCE = 256
#: The most of an authorize request's scope string kept with its code for the token
#: response's words (``AuthorizeRequest.asked``): far more than any app's scopes.
_MAX_ASKED = 4096
#: The longest ``state`` taken (and so sent back), in bytes of UTF-8. SMART App Launch
#: 2.0 has apps send one of at least 122 bits of entropy (a random UUID, 36 characters,
#: is enough); it is echoed into every redirect back to the app, where a huge one would
#: make a URL no browser or proxy takes.
_MAX_STATE = 1024


#: The columns of an authorization code its seal covers (what the code will open), in
#: order: not whether it was used, nor the session it opened.
CODE_SEALED = (
    "code_hash",
    "client_id",
    "account_id",
    "redirect_uri",
    "code_challenge",
    "scopes",
    "expires_us",
    "nonce",
    "launch_state",
    "patient_id",
    "patient_pseudonym",
)
#: Why a code whose row does not match its seal is refused.
CODE_ALTERED = "authorization code record altered in the database"


def code_seal(key: bytes, columns: Mapping[str, Any]) -> bytes:
    """The seal of an ``auth_code`` row whose ``CODE_SEALED`` columns are ``columns``."""
    return seal_fields(key, "carevault-code/1", [columns.get(name) for name in CODE_SEALED])


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


#: Every context a stored grant may hold: a refresh narrows within what was granted.
_ANY_CONTEXT = frozenset({"patient", "user", "system"})


def _narrowed(asked: str) -> Callable[[str], str]:
    """The scope of a refreshed access token when the client asks for ``asked``: exactly
    that if it is within the session's grant (RFC 6749 section 6, SMART v2: "equal to or
    narrower than" the original), else ``invalid_scope`` (RFC 6749 5.2: "exceeds the
    scope granted by the resource owner"), never the grant widened or kept silently."""

    def narrowed(granted_text: str) -> str:
        try:
            requested = smart.parse(asked, allowed_contexts=_ANY_CONTEXT)
        except smart.InvalidScope as error:
            raise OAuthError("invalid_scope", str(error)) from None
        granted = smart.parse(granted_text, allowed_contexts=_ANY_CONTEXT)
        if not smart.within(requested, granted):
            raise OAuthError("invalid_scope", "the requested scope exceeds the scope granted")
        return granted_text if smart.within(granted, requested) else requested.text()

    return narrowed


@dataclass(frozen=True)
class AuthorizeRequest:
    client: ClientApp
    redirect_uri: str
    scope: smart.Scopes
    state: str
    code_challenge: str
    nonce: str | None = None
    #: The scopes as the app spelled them (v1 or v2), for the token response's words.
    asked: str = ""

    @property
    def patient_launch(self) -> bool:
        return smart.wants_patient_launch(self.scope)


@dataclass(frozen=True)
class Approved:
    """A signed-in user's approval: where to send the browser, or (``redirect`` None)
    the code that waits for the user to choose the patient in context."""

    account: Account
    code: str
    redirect: str | None


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
        id_tokens: IdTokens | None = None,
    ) -> None:
        self.id_tokens = id_tokens
        self.assertions = ClientAssertions(engine, clock)
        self.engine = engine
        self.accounts = accounts
        self.clients = clients
        self.sessions = sessions
        self.audit = audit
        self.direct_grant = direct_grant
        self.clock = clock
        #: The key codes are sealed with (None with encryption off) and whether every
        #: code has been sealed: set by the composition root (``keys.anchors``).
        self.seal_key: bytes | None = None
        self.all_sealed = False

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
        # Judged again at use: an app registered before redirect URIs were judged as whole
        # URLs may hold one that sends codes in the clear to another host.
        if (
            redirect_uri not in client.redirect_uris
            or redirect_uri_refusal(redirect_uri) is not None
        ):
            raise OAuthError("invalid_request", "redirect_uri is not registered for this client")
        refusal = _state_refusal(params.get("state", ""))
        if refusal is not None:
            raise OAuthError("invalid_request", refusal, 302)
        if not params.get("response_type"):
            # RFC 6749 4.1.2.1: a required parameter missing is invalid_request.
            raise OAuthError("invalid_request", "response_type is required", 302)
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
        if params.get("launch"):
            raise OAuthError(
                "invalid_request",
                "EHR launch is not supported: use a standalone launch (launch/patient)",
                302,
            )
        nonce = params.get("nonce") or None
        if nonce is not None and len(nonce) > _MAX_NONCE:
            raise OAuthError("invalid_request", f"nonce is longer than {_MAX_NONCE}", 302)
        try:
            requested = smart.parse(
                params.get("scope", ""), allowed_contexts=frozenset({"user", "patient"})
            )
        except smart.InvalidScope as error:
            raise OAuthError("invalid_scope", str(error), 302) from None
        granted = smart.narrow(requested, client.scopes)
        if not smart.wants_patient_launch(granted):
            # patient/ scopes mean the patient in context: none without the launch.
            granted = smart.without_patient_grants(granted)
        if not granted.grants:
            patient_only = all(grant.context == "patient" for grant in requested.grants)
            if requested.grants and patient_only and not smart.wants_patient_launch(requested):
                # Said as it is: the app is allowed patient/ scopes, not without a patient.
                raise OAuthError(
                    "invalid_scope",
                    "patient/ scopes are granted only with launch/patient (a patient chosen "
                    "at sign-in)",
                    302,
                )
            raise OAuthError(
                "invalid_scope", "none of the requested scopes is allowed for this app", 302
            )
        return AuthorizeRequest(
            client,
            redirect_uri,
            granted,
            params["state"],
            challenge,
            nonce,
            params.get("scope", "")[:_MAX_ASKED],
        )

    def error_redirect(self, request_params: Mapping[str, str], error: OAuthError) -> str:
        query = {"error": error.error, "error_description": error.description}
        state = request_params.get("state", "")
        if _state_refusal(state) is None:
            # RFC 6749 4.1.2.1: the state as the app sent it; one refused is not sent back.
            query["state"] = state
        return f"{request_params['redirect_uri']}?{urlencode(query)}"

    def approve(
        self, request: AuthorizeRequest, username: str, password: str, code: str, origin: Origin
    ) -> Approved:
        """Sign the user in; where to send the browser (with the code), or, for a patient
        launch, the code that waits for the patient picker (never sent to the app until
        a patient is chosen, and never redeemable before)."""
        account = self._sign_in(username, password, code, origin, request.client.client_id)
        authorization_code = secrets.token_urlsafe(32)
        now_us = to_micros(self.clock())
        picking = request.patient_launch
        lifetime = PICKER_SECONDS if picking else CODE_SECONDS
        columns: dict[str, Any] = {
            "code_hash": _hash(authorization_code),
            "client_id": request.client.client_id,
            "account_id": account.account_id,
            "redirect_uri": request.redirect_uri,
            "code_challenge": request.code_challenge,
            "scopes": self._identity_scopes(request.scope, account).text(),
            "expires_us": now_us + lifetime * 1_000_000,
            "nonce": request.nonce,
            "launch_state": _PICKING if picking else None,
            "patient_id": None,
            "patient_pseudonym": None,
        }
        with write_transaction(self.engine) as connection:
            connection.execute(
                insert(auth_code).values(
                    **columns,
                    used_us=None,
                    session_id=None,
                    seal=self._code_seal(columns),
                    asked_scope=request.asked or None,
                )
            )
        if picking:
            return Approved(account, authorization_code, None)
        return Approved(account, authorization_code, _code_redirect(request, authorization_code))

    @staticmethod
    def _identity_scopes(scopes: smart.Scopes, account: Account) -> smart.Scopes:
        """``fhirUser`` only for a user who is a Practitioner here: the ID token's claim
        must point at a resource, and a granted scope promises the claim."""
        if "fhirUser" in scopes.session and account.practitioner_id is None:
            return smart.Scopes(scopes.grants, scopes.session - {"fhirUser"})
        return scopes

    def _code_seal(self, columns: Mapping[str, Any]) -> bytes | None:
        return None if self.seal_key is None else code_seal(self.seal_key, columns)

    def _code_genuine(self, row: Any) -> bool:
        """Whether an ``auth_code`` row is as CareVault wrote it (always, with no key): a
        code inserted in the database, or edited, opens no session (review of round 70)."""
        expected = self._code_seal(row._mapping)
        return expected is None or seal_matches(row.seal, expected, self.all_sealed)

    def seal_unsealed(self) -> int:
        """Seal every code that has no seal, as it stands (once, when sealing begins)."""
        if self.seal_key is None:
            return 0
        return seal_unsealed(
            self.engine,
            auth_code,
            [auth_code.c.code_hash],
            lambda row: self._code_seal(row._mapping),
        )

    def picking(self, code: str, request: AuthorizeRequest) -> Account:
        """The user a picker's code was issued to, while it still waits for a patient and
        belongs to ``request`` (the same app and redirect); OAuthError if not."""
        row = self._picking_row(code, request)
        account = self.accounts.get(row.account_id)
        if account is None or account.suspended:
            raise OAuthError("access_denied", "the sign-in is no longer valid", 302)
        return account

    def _picking_row(self, code: str, request: AuthorizeRequest) -> Any:
        now_us = to_micros(self.clock())
        with read_transaction(self.engine) as connection:
            row = connection.execute(
                select(auth_code).where(auth_code.c.code_hash == _hash(code))
            ).first()
        if (
            row is None
            or not self._code_genuine(row)
            or row.launch_state != _PICKING
            or row.used_us is not None
            or row.expires_us <= now_us
            or row.client_id != request.client.client_id
            or row.redirect_uri != request.redirect_uri
        ):
            raise OAuthError(
                "access_denied", "the patient was not chosen in time: start again", 302
            )
        return row

    def decline(self, code: str, request: AuthorizeRequest) -> str:
        """The user declined at the patient picker: the waiting code is spent (never
        redeemable, even if the app somehow had it) and the app is told ``access_denied``
        (RFC 6749 4.1.2.1), with its ``state``; where to send the browser."""
        row = self._picking_row(code, request)
        with write_transaction(self.engine) as connection:
            connection.execute(
                update(auth_code)
                .where(auth_code.c.code_hash == row.code_hash, auth_code.c.used_us.is_(None))
                .values(used_us=to_micros(self.clock()))
            )
        return self.declined(request)

    @staticmethod
    def declined(request: AuthorizeRequest) -> str:
        """Where to send the browser of a user who declined: the app's redirect URI with
        ``access_denied`` and its ``state``."""
        query = {
            "error": "access_denied",
            "error_description": "the user declined",
            "state": request.state,
        }
        return f"{request.redirect_uri}?{urlencode(query)}"

    def pick(
        self, code: str, request: AuthorizeRequest, patient: LaunchPatient, origin: Origin
    ) -> str:
        """Put ``patient`` (already read through the gate by the user) in context of the
        code, and return where to send the browser with it."""
        row = self._picking_row(code, request)
        now_us = to_micros(self.clock())
        chosen = {
            "launch_state": None,
            "patient_id": patient.patient_id,
            "patient_pseudonym": patient.pseudonym,
            "expires_us": now_us + CODE_SECONDS * 1_000_000,
        }
        with write_transaction(self.engine) as connection:
            changed = connection.execute(
                update(auth_code)
                .where(auth_code.c.code_hash == row.code_hash, auth_code.c.launch_state == _PICKING)
                .values(**chosen, seal=self._code_seal({**row._mapping, **chosen}))
            ).rowcount
        if changed != 1:
            raise OAuthError("access_denied", "the patient was already chosen", 302)
        self.audit.record(
            [
                AuditEvent(
                    tag=Tag.AUTH_PATIENT_CHOSEN,
                    outcome=Outcome.SUCCESS,
                    at_us=now_us,
                    principal=f"staff-account:{row.account_id}",
                    client_id=row.client_id,
                    source_address=origin.source_address,
                    user_agent=(origin.user_agent or "")[:200] or None,
                    resource_type="Patient",
                    resource_id=patient.patient_id,
                    patient_pseudonym=patient.pseudonym,
                    reason="patient in context chosen at a patient launch",
                )
            ]
        )
        return _code_redirect(request, code)

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
        self,
        form: Mapping[str, str],
        authorization: str | None,
        origin: Origin,
        issuer: str | None = None,
        *,
        audience: str | None = None,
    ) -> dict[str, object]:
        """The token response; with ``openid`` granted to a signed-in user, an ID token
        from ``issuer`` (this server's public root, as its OpenID configuration says).
        ``audience``: the token endpoint's URL, which a client's signed assertion must
        name (none: assertions are refused)."""
        grant = form.get("grant_type", "")
        account_id: str | None
        reach: dict[str, object] = {}
        nonce: str | None = None
        # The scopes as the client spelled them: in this request, or (a code) at
        # /auth/authorize, where the code's request asked for them.
        asked: str | None = form.get("scope")
        try:
            if grant == "authorization_code":
                pair, account_id, nonce, asked = self._redeem_code(
                    form, authorization, origin, audience
                )
            elif grant == "refresh_token":
                pair, account_id = self._refresh(form, authorization, origin, audience)
            elif grant == "client_credentials":
                pair, reach = self._client_credentials(form, authorization, origin, audience)
                account_id = None
            elif grant == "password" and self.direct_grant:
                pair, account_id = self._password(form, origin)
            elif not grant:
                # RFC 6749 5.2: invalid_request, a required parameter missing.
                raise OAuthError("invalid_request", "grant_type is required")
            else:
                raise OAuthError("unsupported_grant_type", "this grant type is not available")
        except OAuthError as error:
            self._record(
                Tag.AUTH_TOKEN_REFUSED,
                Outcome.DENIED,
                origin,
                f"{grant}: {error.reason}",
                client_id=self._recorded_client(form, authorization),
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
            client_id=self._recorded_client(form, authorization),
        )
        body: dict[str, object] = {
            "access_token": pair.access_token,
            "token_type": "Bearer",
            "expires_in": pair.expires_in,
            # As the client spelled its request (v1 or v2); the token holds the v2 text.
            "scope": smart.as_asked(pair.scope, asked),
        }
        if pair.refresh_token:
            body["refresh_token"] = pair.refresh_token
        if pair.patient_id:
            body["patient"] = pair.patient_id
        if grant in ("authorization_code", "password") and account_id and issuer:
            client_id = _claimed_client(form, authorization) or ""
            id_token = self._id_token(pair, client_id, account_id, issuer, nonce)
            if id_token:
                body["id_token"] = id_token
        return body

    def _recorded_client(self, form: Mapping[str, str], authorization: str | None) -> str | None:
        """The client a token request's ledger entry names: the one it claims, or for a
        public app's refresh that names none, the refresh token's client."""
        claimed = _claimed_client(form, authorization)
        if claimed is None and _names_no_client(form, authorization) and form.get("refresh_token"):
            return self.sessions.client_of_refresh_token(form["refresh_token"])
        return claimed

    def _id_token(
        self, pair: TokenPair, client_id: str, account_id: str, issuer: str, nonce: str | None
    ) -> str | None:
        granted = set(pair.scope.split())
        account = self.accounts.get(account_id)
        if self.id_tokens is None or "openid" not in granted or account is None:
            return None
        fhir_user = (
            f"Practitioner/{account.practitioner_id}"
            if "fhirUser" in granted and account.practitioner_id
            else None
        )
        return self.id_tokens.issue(
            Identity(account.account_id, account.display_name, fhir_user),
            issuer=issuer,
            client_id=client_id,
            nonce=nonce,
            now=to_micros(self.clock()) // 1_000_000,
            with_profile="profile" in granted,
        )

    def _client(
        self, form: Mapping[str, str], authorization: str | None, audience: str | None
    ) -> ClientApp:
        """The calling client: confidential ones must authenticate, with their secret
        (Basic or form) or, registered with keys, a signed assertion naming ``audience``
        (the token endpoint's URL)."""
        if "client_assertion" in form or "client_assertion_type" in form:
            return self._asserted_client(form, authorization, audience)
        client_id, secret = form.get("client_id", ""), form.get("client_secret")
        if authorization and authorization.lower().startswith("basic "):
            basic = _basic(authorization)
            if basic is None:
                raise OAuthError("invalid_client", "malformed client credentials", 401)
            client_id, secret = basic
            # One client, one method (RFC 6749 2.3): a second client's id or secret in
            # the form was ignored, and the token issued to the Basic one.
            if "client_secret" in form:
                raise OAuthError(
                    "invalid_request",
                    "authenticate with one method: HTTP Basic or the form",
                    reason="a client_secret in the form beside HTTP Basic",
                )
            if form.get("client_id", client_id) != client_id:
                raise OAuthError(
                    "invalid_request",
                    "client_id is not the client of the HTTP Basic credentials",
                    reason="client_id in the form names another client than HTTP Basic",
                )
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

    def _asserted_client(
        self, form: Mapping[str, str], authorization: str | None, audience: str | None
    ) -> ClientApp:
        """The client a signed assertion authenticates (RFC 7523 §2.2, SMART Backend
        Services): one way of authenticating at a time, never with a secret beside it."""
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise OAuthError(
                "invalid_client",
                "client authentication failed",
                401,
                f"client_assertion_type is not {ASSERTION_TYPE}",
            )
        if authorization or "client_secret" in form:
            raise OAuthError(
                "invalid_request", "authenticate with one method: an assertion or a secret"
            )
        assertion = form.get("client_assertion", "")
        client_id = claimed_client(assertion) or ""
        if form.get("client_id", client_id) != client_id:
            raise OAuthError(
                "invalid_client",
                "client authentication failed",
                401,
                "client_id is not the assertion's issuer",
            )
        client = self.clients.get(client_id)
        if client is None or client.revoked or not client.confidential:
            raise OAuthError(
                "invalid_client", "client authentication failed", 401, "unknown or revoked client"
            )
        try:
            self.assertions.verify(assertion, client.client_id, client.jwks, audience)
        except AssertionRefused as error:
            raise OAuthError(
                "invalid_client", "client authentication failed", 401, str(error)
            ) from None
        return client

    def _redeem_code(
        self,
        form: Mapping[str, str],
        authorization: str | None,
        origin: Origin,
        audience: str | None,
    ) -> tuple[TokenPair, str, str | None, str | None]:
        """The session a code opens, its account, the nonce and the scopes as the app
        asked for them at /auth/authorize (None for a code made before records_0041)."""
        client = self._client(form, authorization, audience)
        code = form.get("code", "")
        if not code:
            # RFC 6749 5.2: a required parameter missing is invalid_request.
            raise OAuthError("invalid_request", "code is required")
        now_us = to_micros(self.clock())
        with read_transaction(self.engine) as connection:
            row = connection.execute(
                select(auth_code).where(auth_code.c.code_hash == _hash(code))
            ).first()
        if row is None:
            raise OAuthError("invalid_grant", "the code is not valid", reason="unknown code")
        if not self._code_genuine(row):
            raise OAuthError("invalid_grant", "the code is not valid", reason=CODE_ALTERED)
        if row.used_us is not None:
            # A code used twice was probably intercepted: end what it opened (RFC 6749 §4.1.2).
            if row.session_id:
                self.sessions.revoke(row.session_id, "authorization code replayed")
            raise OAuthError(
                "invalid_grant", "the code is not valid", reason="code used twice; session revoked"
            )
        if row.expires_us <= now_us:
            raise OAuthError("invalid_grant", "the code is not valid", reason="code expired")
        if row.launch_state is not None:
            raise OAuthError(
                "invalid_grant", "the code is not valid", reason="no patient chosen yet"
            )
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
        patient = (
            LaunchPatient(row.patient_id, row.patient_pseudonym)
            if row.patient_id and row.patient_pseudonym
            else None
        )
        if patient is None and smart.wants_patient_launch(scope):
            # A patient launch that put no patient in context: refused, never widened.
            raise OAuthError("invalid_grant", "the code is not valid", reason="no patient chosen")
        pair = self.sessions.open(
            subject=account.account_id,
            account_id=account.account_id,
            client_id=client.client_id,
            scope=row.scopes,
            with_refresh=scope.wants_refresh,
            # Where the app redeemed the code: how the user recognises the session later.
            source_address=origin.source_address,
            user_agent=origin.user_agent,
            patient=patient,
        )
        with write_transaction(self.engine) as connection:
            connection.execute(
                update(auth_code)
                .where(auth_code.c.code_hash == row.code_hash)
                .values(session_id=pair.session_id)
            )
        return pair, account.account_id, row.nonce, row.asked_scope

    def _refresh(
        self,
        form: Mapping[str, str],
        authorization: str | None,
        origin: Origin,
        audience: str | None,
    ) -> tuple[TokenPair, str | None]:
        if _names_no_client(form, authorization):
            client = self._refreshing_public_client(form)
        else:
            client = self._client(form, authorization, audience)
        if not form.get("refresh_token"):
            # RFC 6749 5.2: a required parameter missing is invalid_request.
            raise OAuthError("invalid_request", "refresh_token is required")
        asked = form.get("scope", "").strip()
        try:
            return self.sessions.refresh(
                form["refresh_token"], client.client_id, _narrowed(asked) if asked else None
            )
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

    def _refreshing_public_client(self, form: Mapping[str, str]) -> ClientApp:
        """The client of a refresh request that names none (no ``client_id``, no
        credentials): RFC 6749 section 6 asks only confidential clients to authenticate
        to refresh, and SMART's client-js sends a public app's refresh token alone. The
        token itself names its client; it must be a live public one (a confidential
        client's token still needs its secret or assertion). A public client's id proves
        nothing, so knowing it from the token gives a thief nothing the form would not."""
        token = form.get("refresh_token", "")
        if not token:
            raise OAuthError("invalid_request", "refresh_token is required")
        client_id = self.sessions.client_of_refresh_token(token)
        if client_id is None:
            raise OAuthError(
                "invalid_grant", "the refresh token is not valid", reason="unknown refresh token"
            )
        client = self.clients.get(client_id)
        if client is None or client.revoked or client.confidential:
            raise OAuthError(
                "invalid_client",
                "client authentication failed",
                401,
                "refresh without client authentication for a confidential or revoked client",
            )
        return client

    def _client_credentials(
        self,
        form: Mapping[str, str],
        authorization: str | None,
        origin: Origin,
        audience: str | None,
    ) -> tuple[TokenPair, dict[str, object]]:
        """A token for an integration service: only a confidential app, only the system/
        scopes it is registered for; the reach is recorded with the issuance."""
        client = self._client(form, authorization, audience)
        if not client.confidential:
            raise OAuthError("unauthorized_client", "client credentials need a confidential client")
        # A scope of a type this server does not hold grants nothing: left out, as a
        # type the client is not registered for is (Backend Services' worked example
        # asks system/CommunicationRequest.write beside system/*.read).
        asked, unknown = smart.without_unknown_types(form.get("scope", ""))
        try:
            requested = smart.parse(asked, allowed_contexts=frozenset({"system"}))
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
            # Its row checked against its seal: the account's clinics are the app's reach
            # (adversary round 70).
            if self.accounts.get_genuine(client.account_id) is None:
                raise OAuthError(
                    "invalid_grant", "this client cannot be used now", reason=ACCOUNT_ALTERED
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
        if unknown:
            reach["not_granted"] = [item[:60] for item in unknown[:20]]
        if client.account_id is not None:
            reach["account"] = client.account_id
        return pair, reach

    def _password(self, form: Mapping[str, str], origin: Origin) -> tuple[TokenPair, str]:
        client = self._client(form, None, None)
        try:
            requested = smart.parse(
                form.get("scope", ""), allowed_contexts=frozenset({"user", "patient"})
            )
        except smart.InvalidScope as error:
            raise OAuthError("invalid_scope", str(error)) from None
        # No picker on this path: no patient in context, so no patient/ scopes.
        granted = smart.without_patient_grants(smart.narrow(requested, client.scopes))
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
            scope=self._identity_scopes(granted, account).text(),
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

    def revoke(
        self,
        form: Mapping[str, str],
        authorization: str | None,
        origin: Origin,
        *,
        audience: str | None = None,
    ) -> None:
        """RFC 7009: revoke a refresh token's session (an access token's session too).
        ``audience``: as for ``token``. A client that does not authenticate is recorded
        as a refused token request is."""
        try:
            client = self._client(form, authorization, audience)
        except OAuthError as error:
            self._record(
                Tag.AUTH_TOKEN_REFUSED,
                Outcome.DENIED,
                origin,
                f"revoke: {error.reason}",
                client_id=_claimed_client(form, authorization),
            )
            raise
        token = form.get("token", "")
        if not token:
            # RFC 7009 2.1: token is REQUIRED; answered as RFC 6749 5.2 says, never as a
            # revocation done (an app signing out with an empty token would think it was).
            raise OAuthError("invalid_request", "token is required")
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


def _state_refusal(state: str) -> str | None:
    """Why an authorization request's ``state`` is refused, or None. SMART App Launch 2.0
    makes it REQUIRED: without it an app cannot tell its own callback from one an attacker
    sent its user to (a forged request, a fixed session). How unguessable it is, no server
    can tell."""
    if not state:
        return (
            "state is required: an unguessable value the app checks when the answer "
            "comes back (SMART App Launch)"
        )
    if len(state.encode()) > _MAX_STATE:
        # Counted in bytes as sent (UTF-8): 1,024 emoji came back as 12 KB of query.
        return f"state is longer than {_MAX_STATE} bytes: it is not sent back"
    return None


def _code_redirect(request: AuthorizeRequest, code: str) -> str:
    query = {"code": code, "state": request.state}
    return f"{request.redirect_uri}?{urlencode(query)}"


def _basic(authorization: str) -> tuple[str, str] | None:
    """The client id and secret of HTTP Basic credentials (``Basic <base64>``), each
    form-url-decoded as RFC 6749 2.3.1 has clients encode them (authlib, requests-oauthlib
    do); None if they are not base64 of UTF-8 text with a colon."""
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        return None
    return unquote_plus(client_id), unquote_plus(secret)


def _names_no_client(form: Mapping[str, str], authorization: str | None) -> bool:
    """Whether a token request identifies no client at all: no ``client_id``, secret or
    assertion in the form, no HTTP Basic."""
    return not authorization and not any(
        name in form
        for name in ("client_id", "client_secret", "client_assertion", "client_assertion_type")
    )


def _claimed_client(form: Mapping[str, str], authorization: str | None) -> str | None:
    """The client id a token request names (form or HTTP Basic), for the audit record."""
    if authorization and authorization.lower().startswith("basic "):
        basic = _basic(authorization)
        return (basic[0][:64] or None) if basic is not None else None
    if "client_assertion" in form and "client_id" not in form:
        return claimed_client(form["client_assertion"])
    return form.get("client_id", "")[:64] or None


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
