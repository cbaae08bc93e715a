"""FHIR answers come in R4 JSON only: a client that accepts only XML (or another format),
or JSON only of another FHIR release, is told so with 406 and an OperationOutcome,
rather than sent what it did not ask for.

FHIR R4 (http.html#mime-type): the format is asked for by ``Accept`` or by the ``_format``
parameter, which overrides it; a server that cannot give the format asked for answers
406 Not Acceptable. JSON is ``application/fhir+json`` (also ``application/json``,
``application/json+fhir`` of DSTU2 clients, ``json``); ``*/*``, ``application/*``, no
``Accept`` at all, or any JSON type among several, all get JSON. A type with ``q=0`` is
refused by the client and does not count; one with a ``fhirVersion`` other than R4's
(``4.0``) does not either (http.html#version-parameter): which types count is
``fhir.mediatype.negotiate``.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from carevault.fhir.mediatype import Answer, format_parameter, negotiate, refusal
from carevault.fhir.outcome import FhirError, Issue
from carevault.web.responses import outcome_response

_PREFIX = "/fhir"
#: Bulk export's files are NDJSON, asked for as ``application/fhir+ndjson``.
_FILES = "/fhir/$export-file/"


def acceptable(accept: str) -> bool:
    """Whether an ``Accept`` header (or a ``_format`` value) admits R4 JSON."""
    return negotiate(accept) is Answer.JSON


def _asked_for(scope: Scope) -> str | None:
    """The format the request asks for: ``_format`` over ``Accept``; None for no choice."""
    query: bytes = scope.get("query_string", b"")
    if b"_format" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if name == "_format":
                return format_parameter(value)
    for name, value in scope.get("headers", []):
        if name == b"accept":
            return str(value.decode("latin-1"))
    return None


class FhirFormat:
    """406 for a FHIR request that accepts no R4 JSON; every other request passes as it is."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else ""
        if path.startswith(_PREFIX) and not path.startswith(_FILES):
            asked = _asked_for(scope)
            refused = None if asked is None else refusal(negotiate(asked))
            if refused is not None:
                problem = FhirError(406, [Issue("not-supported", refused)])
                await outcome_response(problem)(scope, receive, send)
                return
        await self.app(scope, receive, send)
