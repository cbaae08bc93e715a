"""FHIR responses and the error handlers that turn failures into OperationOutcomes."""

from __future__ import annotations

import json
import logging
from http import HTTPStatus

from fastapi import Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from carevault.db import storage_problem
from carevault.fhir.outcome import FhirError, Issue, outcome
from carevault.gate import new_request_id
from carevault.logsafe import describe
from carevault.rest.bundles import dumps
from carevault.rest.interactions import JSON, FhirResponse
from carevault.web.allowed import allowed_methods
from carevault.web.unknown_operations import routing_refused

log = logging.getLogger("carevault.web")
#: Where the request's name is kept in its ASGI scope's state (``UnexpectedErrors``).
REQUEST_ID = "carevault_request_id"

#: Patient data must never sit in a shared cache or the browser's disk cache.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache", "X-Content-Type-Options": "nosniff"}
#: The OAuth endpoints that take a form (token, RFC 6749 3.2; revocation, RFC 7009 2.1):
#: every refusal there is an OAuth error object, which is what an OAuth client reads.
OAUTH_FORM_PATHS = frozenset({"/auth/token", "/auth/revoke"})


def fhir_response(result: FhirResponse) -> Response:
    headers = {**NO_STORE, **result.headers}
    if result.body is None:
        return Response(status_code=result.status, headers=headers)
    return Response(result.body, status_code=result.status, headers=headers, media_type=JSON)


def outcome_response(error: FhirError) -> Response:
    body = dumps(outcome(error.issues))
    return Response(
        body, status_code=error.status, headers={**NO_STORE, **error.headers}, media_type=JSON
    )


def request_id_of(scope: Scope) -> str | None:
    """The name ``UnexpectedErrors`` gave the request of ``scope`` (None outside the app)."""
    state = scope.get("state")
    found = state.get(REQUEST_ID) if isinstance(state, dict) else None
    return found if isinstance(found, str) else None


async def on_fhir_error(_request: Request, error: Exception) -> Response:
    assert isinstance(error, FhirError)  # noqa: S101 - registered for FhirError only
    return outcome_response(error)


async def on_http_error(request: Request, error: Exception) -> Response:
    """Starlette's and FastAPI's refusals as OperationOutcomes, their headers kept; a 405
    with ``Allow`` naming every method the path accepts (RFC 9110 15.5.6: it must)."""
    assert isinstance(error, StarletteHTTPException)  # noqa: S101
    code = {404: "not-found", 405: "not-supported", 413: "too-long"}.get(
        error.status_code, "invalid"
    )
    detail = error.detail if isinstance(error.detail, str) else "request refused"
    headers = dict(error.headers or {})
    if error.status_code == 405:
        allowed = allowed_methods(request.app.router.routes, request.scope)
        # Starlette's own list (one route's) only if the routes could not be read.
        headers["Allow"] = ", ".join(allowed) if allowed else headers.get("Allow", "")
        if request.url.path in OAUTH_FORM_PATHS:
            return _oauth_method_refused(headers)
    issue = Issue(code, detail)
    if error.status_code in (404, 405) and detail == HTTPStatus(error.status_code).phrase:
        # The router's own refusal (no words of ours): under the FHIR base, in FHIR's.
        issue = routing_refused(request, error.status_code, headers.get("Allow", "")) or issue
    return outcome_response(FhirError(error.status_code, [issue], headers))


def _oauth_method_refused(headers: dict[str, str]) -> Response:
    """A ``GET`` (or any method but ``POST``) of the token or revocation endpoint: 405
    with ``Allow: POST`` (RFC 9110 15.5.6) and RFC 6749 5.2's ``invalid_request`` ("The
    client MUST use the HTTP POST method", 3.2). It was a FHIR OperationOutcome, which an
    OAuth library does not read as an error (docs/smart-apps.md: never one here)."""
    body = {"error": "invalid_request", "error_description": "use POST"}
    return Response(
        json.dumps(body),
        status_code=405,
        headers={**NO_STORE, **headers},
        media_type="application/json",
    )


async def on_validation_error(_request: Request, _error: Exception) -> Response:
    return outcome_response(FhirError(400, [Issue("invalid", "the request is malformed")]))


class UnexpectedErrors:
    """Answers any uncaught error with a 500 OperationOutcome and logs it safely.

    Errors stop here rather than in Starlette's outer handler, which re-raises them to
    the server to log with a full traceback (whose frames may quote the request's
    data). The log line has the type, the code location and the request's reference,
    which the client is given too; never the message.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        # The request's name: on every answer (``X-Request-ID``), in every audit entry
        # it leads to (``Caller.request_id``) and in the log line of an error it meets.
        reference = new_request_id()
        scope.setdefault("state", {})[REQUEST_ID] = reference

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"x-request-id", reference.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as error:
            problem = storage_problem(error)
            if problem is not None:
                # The database, not the request, failed: refuse (fail closed) and say so
                # once in words an operator can act on; service returns by itself.
                log.error(
                    "storage unavailable: %s; refusing with 503 (request %s, %s)",
                    problem,
                    reference,
                    describe(error),
                )
            else:
                log.error("unexpected %s (request %s)", describe(error), reference)
            if started:
                return  # the answer was under way: the client sees it cut short
            if problem is not None:
                failure = FhirError(
                    503,
                    [Issue("transient", f"storage unavailable ({problem}); reference {reference}")],
                    {"Retry-After": "5"},
                )
            else:
                failure = FhirError(
                    500, [Issue("exception", f"internal error; reference {reference}")]
                )
            await outcome_response(failure)(scope, receive, sending)
