"""Who is calling: the bearer token on every FHIR request, checked in the gate's terms."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from carevault.access.control import StepUpRequired, Unauthenticated
from carevault.bootstrap import Services
from carevault.clock import to_micros
from carevault.fhir.outcome import FhirError, Issue
from carevault.gate import Caller, DecryptionBudget, WouldBlock, method_detail
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.web.head import asked_method
from carevault.web.responses import request_id_of

#: Headers no response to a bad token should be without (RFC 6750 §3).
_CHALLENGE = 'Bearer realm="carevault", error="invalid_token"'
#: To a request with no bearer token at all, the challenge alone: RFC 6750 §3.1, "If the
#: request lacks any authentication information ... the resource server SHOULD NOT
#: include an error code or other error information" (integrator round 55).
_NO_TOKEN_CHALLENGE = 'Bearer realm="carevault"'  # noqa: S105 - a header, no secret
#: A live session an alert's response paused (RFC 9470): the same token goes on after
#: POST /auth/step-up with a fresh TOTP code.
_STEP_UP_TEXT = (
    "step-up required: unusual activity was noticed on this account; present a fresh "
    'TOTP code for this session (POST /auth/step-up with {"totp": "<code>"} and this '
    "token) before more data"
)
_STEP_UP_CHALLENGE = (
    'Bearer realm="carevault", error="insufficient_user_authentication", '
    'error_description="a fresh TOTP code is required (POST /auth/step-up)"'
)


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


ServicesDep = Annotated[Services, Depends(services)]


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def authenticate(svc: Services, request: Request, *, may_block: bool = True) -> Caller:
    """The caller behind the request's bearer token, or a 401 or 429 whose refusal is
    recorded. ``may_block=False`` (on the event loop, where recording would wait for the
    ledger): a refusal raises ``WouldBlock`` instead, having recorded and taken nothing,
    for the caller to authenticate again in a worker thread."""
    source, agent = client_address(request), request.headers.get("user-agent")
    method = asked_method(request.scope)
    token = bearer_token(request)
    try:
        who = svc.access.authenticate(token)
    except Unauthenticated as refused:
        if not may_block:
            raise WouldBlock("a refused token is recorded") from None
        event = AuditEvent(
            tag=Tag.AUTH_TOKEN_REFUSED,
            outcome=Outcome.DENIED,
            at_us=to_micros(svc.clock()),
            request_id=request_id_of(request.scope),
            principal=refused.principal,
            session_id=refused.session_id,
            source_address=source,
            user_agent=(agent or "")[:200] or None,
            reason=refused.reason,
            detail={"path": request.url.path[:200], **method_detail(method)},
        )
        if refused.principal is None:
            # No one is named (no token, or one that does not verify): counted per
            # source and minute, so that a flood of them cannot flood the ledger.
            svc.refusals.refuse(event)
        else:
            svc.audit.record([event])
        if isinstance(refused, StepUpRequired):
            raise FhirError(
                401,
                [Issue("login", _STEP_UP_TEXT)],
                {"WWW-Authenticate": _STEP_UP_CHALLENGE},
            ) from None
        raise FhirError(
            401,
            [Issue("login", "a valid access token is required")],
            {"WWW-Authenticate": _CHALLENGE if token is not None else _NO_TOKEN_CHALLENGE},
        ) from None
    if svc.limits.account is not None:
        wait = svc.limits.account.take(who.actor.principal)
        if wait:
            if not may_block:
                # Nothing was taken: the bucket gives no token while it would have to wait.
                raise WouldBlock("a rate-limited request is recorded")
            svc.refusals.refuse(
                AuditEvent(
                    tag=Tag.AUTH_RATE_LIMITED,
                    outcome=Outcome.DENIED,
                    at_us=to_micros(svc.clock()),
                    request_id=request_id_of(request.scope),
                    principal=who.actor.principal,
                    client_id=who.client_id,
                    session_id=who.session_id,
                    source_address=source,
                    reason="too many requests by this account",
                    detail={"path": request.url.path[:200], **method_detail(method)},
                )
            )
            raise FhirError(
                429,
                [Issue("throttled", "too many requests: slow down and try again later")],
                {"Retry-After": str(wait)},
            )
    return Caller(
        budget=DecryptionBudget(svc.settings.max_decrypts_per_request),
        principal=who.actor.principal,
        source_address=source,
        user_agent=agent,
        actor=who.actor,
        session_id=who.session_id,
        client_id=who.client_id,
        scopes=who.scopes,
        request_id=request_id_of(request.scope),
        method=method,
    )


async def caller(request: Request, svc: ServicesDep) -> Caller:
    return await run_in_threadpool(authenticate, svc, request)


CallerDep = Annotated[Caller, Depends(caller)]
