"""A person at a workstation: signed in, asking the FHIR API what a clinic app would ask.

Requests take the in-process path of a live server minus HTTP: the session is checked
on every request (``AccessControl.session_actor``, what a verified bearer token leads
to), then ``FhirInteractions`` and the gate do the rest. So a suspended account or a
revoked session is refused here exactly as over HTTP, and every ledger entry names the
person's account, session, client app, source address and user agent. Bearer tokens
themselves are not minted: their expiry is checked against the wall clock, while a run
lives on simulated time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from carevault.access.control import Unauthenticated
from carevault.bootstrap import Services
from carevault.clock import to_micros
from carevault.fhir.outcome import FhirError
from carevault.gate import Caller
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.rest.interactions import FhirResponse

STAFF_SCOPE = "openid fhirUser user/*.cruds"
#: A sign-in lasts the session's lifetime; the simulator reopens one per shift.
SIGN_IN_GRANT = "authorization_code grant"


@dataclass(frozen=True)
class Device:
    """Where a person's requests come from: the same workstation every day."""

    source_address: str
    user_agent: str


@dataclass(frozen=True)
class Reply:
    """What the person got back: the status and, if any, the body as sent."""

    request: str
    status: int
    body: bytes | None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def document(self) -> dict[str, Any]:
        return json.loads(self.body) if self.body else {}

    def resources(self) -> list[dict[str, Any]]:
        """The resources the reply carries: a Bundle's entries, or the one resource."""
        if not self.ok or not self.body:
            return []
        found = self.document()
        if found.get("resourceType") == "Bundle":
            return [
                entry["resource"]
                for entry in found.get("entry", [])
                if isinstance(entry.get("resource"), dict)
                and entry["resource"].get("resourceType") != "OperationOutcome"
            ]
        return [found] if found.get("resourceType") != "OperationOutcome" else []


#: Called around each request: before it is made, and with its reply.
Watcher = Callable[["Desk", str, Reply | None], None]


class Desk:
    """A staff member's workstation (``username``), or an integration's server (a
    confidential client app signed in with the client-credentials grant)."""

    def __init__(
        self,
        services: Services,
        device: Device,
        *,
        client_id: str,
        scope: str = STAFF_SCOPE,
        username: str | None = None,
    ) -> None:
        self.account = None
        if username is not None:
            self.account = services.accounts.find(username)
            if self.account is None:
                raise LookupError(f"no account {username}")
        self.services = services
        self.device = device
        self.client_id = client_id
        self.scope = scope
        self.session_id: str | None = None
        self.base = f"{services.settings.public_base_url or 'http://localhost'}/fhir"
        self.watchers: list[Watcher] = []

    @property
    def principal(self) -> str:
        """How the ledger names whoever acts through this desk."""
        return f"staff:{self.account.username}" if self.account else f"client:{self.client_id}"

    # --- signing in --------------------------------------------------------------------------

    def _record(self, tag: Tag, outcome: Outcome, reason: str, **who: Any) -> None:
        self.services.audit.record(
            [
                AuditEvent(
                    tag=tag,
                    outcome=outcome,
                    at_us=to_micros(self.services.clock()),
                    client_id=self.client_id,
                    source_address=self.device.source_address,
                    user_agent=self.device.user_agent[:200],
                    reason=reason,
                    **who,
                )
            ]
        )

    def sign_in(self) -> bool:
        """Open a session as a successful sign-in would (password and TOTP, or the client
        secret, taken as right); False, recorded as refused, if the account is suspended
        or the client app revoked."""
        if self.account is None:
            return self._client_credentials()
        account = self.services.accounts.get(self.account.account_id)
        if account is None or account.suspended:
            self._record(
                Tag.AUTH_SIGN_IN_FAILED,
                Outcome.DENIED,
                "account suspended",
                principal=f"staff-account:{self.account.account_id}",
            )
            self.session_id = None
            return False
        self._record(
            Tag.AUTH_SIGNED_IN,
            Outcome.SUCCESS,
            "password and TOTP verified",
            principal=self.principal,
        )
        pair = self.services.sessions.open(
            subject=self.account.account_id,
            account_id=self.account.account_id,
            client_id=self.client_id,
            scope=self.scope,
            with_refresh=True,
            source_address=self.device.source_address,
            user_agent=self.device.user_agent,
        )
        self.session_id = pair.session_id
        self._record(
            Tag.AUTH_TOKEN_ISSUED,
            Outcome.SUCCESS,
            SIGN_IN_GRANT,
            principal=f"staff-account:{self.account.account_id}",
            session_id=pair.session_id,
        )
        return True

    def _client_credentials(self) -> bool:
        client = self.services.clients.get(self.client_id)
        if client is None or client.revoked:
            self._record(
                Tag.AUTH_TOKEN_REFUSED,
                Outcome.DENIED,
                "client_credentials: the client app is revoked or unknown",
            )
            self.session_id = None
            return False
        pair = self.services.sessions.open(
            subject=self.client_id,
            account_id=None,
            client_id=self.client_id,
            scope=self.scope,
            with_refresh=False,
            source_address=self.device.source_address,
            user_agent=self.device.user_agent,
        )
        self.session_id = pair.session_id
        self._record(
            Tag.AUTH_TOKEN_ISSUED,
            Outcome.SUCCESS,
            "client_credentials grant",
            session_id=pair.session_id,
        )
        return True

    def _caller(self, path: str, *, again: bool = True) -> Caller | None:
        if self.session_id is None:
            return None
        try:
            who = self.services.access.session_actor(self.session_id, self.scope, fresh=True)
        except Unauthenticated as refused:
            self._record(
                Tag.AUTH_TOKEN_REFUSED,
                Outcome.DENIED,
                refused.reason,
                principal=refused.principal,
                session_id=refused.session_id,
                detail={"path": f"/fhir/{path}"[:200]},
            )
            if again and refused.reason == "session expired" and self.sign_in():
                # The app asks the person to sign in again, as after a long shift.
                return self._caller(path, again=False)
            return None
        return Caller(
            principal=who.actor.principal,
            source_address=self.device.source_address,
            user_agent=self.device.user_agent,
            actor=who.actor,
            session_id=who.session_id,
            client_id=who.client_id,
            scopes=who.scopes,
        )

    # --- requests ----------------------------------------------------------------------------

    def _send(self, request: str, path: str, call: Callable[[Caller], FhirResponse]) -> Reply:
        for watcher in self.watchers:
            watcher(self, request, None)
        caller = self._caller(path)
        if caller is None:
            reply = Reply(request, 401, None)
        else:
            try:
                response = call(caller)
                reply = Reply(request, response.status, response.body)
            except FhirError as error:
                reply = Reply(request, error.status, None)
        for watcher in self.watchers:
            watcher(self, request, reply)
        return reply

    def read(self, resource_type: str, resource_id: str) -> Reply:
        path = f"{resource_type}/{resource_id}"
        return self._send(
            f"GET {path}",
            path,
            lambda caller: self.services.fhir.read(caller, resource_type, resource_id, self.base),
        )

    def search(self, resource_type: str, params: Sequence[tuple[str, str]]) -> Reply:
        query = "&".join(f"{name}={value}" for name, value in params)
        return self._send(
            f"GET {resource_type}?{query}",
            resource_type,
            lambda caller: self.services.fhir.search(
                caller, resource_type, list(params), self.base, strict=False
            ),
        )

    def everything(self, patient_id: str) -> Reply:
        path = f"Patient/{patient_id}/$everything"
        return self._send(
            f"GET {path}",
            path,
            lambda caller: self.services.fhir.everything(caller, patient_id, [], self.base),
        )

    def create(self, resource: dict[str, Any]) -> Reply:
        kind = str(resource["resourceType"])
        body = json.dumps(resource, separators=(",", ":")).encode()
        return self._send(
            f"POST {kind}",
            kind,
            lambda caller: self.services.fhir.create(
                caller, kind, body, self.base, prefer="return=representation"
            ),
        )

    def update(self, resource: dict[str, Any]) -> Reply:
        kind, resource_id = str(resource["resourceType"]), str(resource["id"])
        body = json.dumps(resource, separators=(",", ":")).encode()
        path = f"{kind}/{resource_id}"
        return self._send(
            f"PUT {path}",
            path,
            lambda caller: self.services.fhir.update(
                caller,
                kind,
                resource_id,
                body,
                self.base,
                if_match=None,
                prefer="return=representation",
            ),
        )
