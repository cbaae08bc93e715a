"""Every answer to a signed-in caller is accounted for in the ledger.

The gate records each access decision; the token check records every bad token. What
neither sees is a request refused before the gate (malformed JSON, an unknown resource
type, a wrong content type, a route the caller's role may not use): the caller is known,
but nothing would be written. OWASP ASVS (V7: every access-control failure logged; V16
in 5.0) and HIPAA's audit controls (45 CFR 164.312(b): record activity in systems that
hold ePHI) ask for it, so this middleware records a ``web:request:refused`` entry for
such an answer before it is sent: who, from where, the method, the path (no body, no
query), the status. If that entry cannot be written the caller gets a 503 instead (fail
closed). Anonymous refusals stay with the per-minute tally (``access.refusals``), and the
caller's account rate limit bounds how many entries one account can cause.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from carevault.access.control import Unauthenticated
from carevault.bootstrap import Services
from carevault.clock import to_micros
from carevault.fhir.outcome import FhirError, Issue
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.trail import AuditUnavailable
from carevault.ledger.writer import counting_records
from carevault.web.head import asked_method
from carevault.web.paths import logged_path
from carevault.web.responses import outcome_response, request_id_of


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return str(token.strip())
    return None


class RefusalRecords:
    """Records a refused answer to a signed-in caller that nothing else recorded."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _bearer(scope) if scope["type"] == "http" else None
        if token is None:
            await self.app(scope, receive, send)
            return
        with counting_records() as recorded:
            replaced = False

            async def sending(message: Message) -> None:
                nonlocal replaced
                if replaced:
                    return
                if message["type"] == "http.response.start" and not recorded:
                    status = int(message["status"])
                    if status >= 400:
                        try:
                            await run_in_threadpool(self._record, scope, token, status)
                        except AuditUnavailable:
                            replaced = True
                            failure = FhirError(
                                503, [Issue("transient", "the audit ledger is unavailable")]
                            )
                            await outcome_response(failure)(scope, receive, send)
                            return
                await send(message)

            await self.app(scope, receive, sending)

    def _record(self, scope: Scope, token: str, status: int) -> None:
        svc = self.services
        try:
            who = svc.access.authenticate(token)
        except Unauthenticated:
            return  # no one is named: the anonymous tally's business
        client = scope.get("client")
        agent = next(
            (v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"user-agent"), ""
        )
        svc.audit.record(
            [
                AuditEvent(
                    tag=Tag.REQUEST_REFUSED,
                    outcome=Outcome.DENIED if status in (401, 403) else Outcome.FAILED,
                    at_us=to_micros(svc.clock()),
                    request_id=request_id_of(scope),
                    principal=who.actor.principal,
                    session_id=who.session_id,
                    client_id=who.client_id,
                    source_address=client[0] if client else None,
                    user_agent=agent[:200] or None,
                    reason=f"answered {status} before reaching the gate",
                    detail={
                        # The client's (HEAD, where the app was handed its GET).
                        "method": asked_method(scope)[:10],
                        "path": logged_path(scope),
                        "status": status,
                    },
                )
            ]
        )
