"""FHIR answers come in JSON only: a client that accepts only XML (or another format) is
told so with 406 and an OperationOutcome, rather than sent JSON it did not ask for.

FHIR R4 (http.html#mime-type): the format is asked for by ``Accept`` or by the ``_format``
parameter, which overrides it; a server that cannot give the format asked for answers
406 Not Acceptable. JSON is ``application/fhir+json`` (also ``application/json``,
``application/json+fhir`` of DSTU2 clients, ``json``); ``*/*``, ``application/*``, no
``Accept`` at all, or any JSON type among several, all get JSON. A type with ``q=0`` is
refused by the client and does not count.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from carevault.fhir.outcome import FhirError, Issue
from carevault.web.responses import outcome_response

_JSON = frozenset(
    {
        "application/fhir+json",
        "application/json",
        "application/json+fhir",
        "json",
        "*/*",
        "application/*",
    }
)
_PREFIX = "/fhir"
#: Bulk export's files are NDJSON, asked for as ``application/fhir+ndjson``.
_FILES = "/fhir/$export-file/"


def acceptable(accept: str) -> bool:
    """Whether an ``Accept`` header (or a ``_format`` value) admits JSON."""
    if not accept.strip():
        return True
    for part in accept.split(","):
        media, *parameters = (piece.strip() for piece in part.split(";"))
        if media.lower() not in _JSON:
            continue
        refused = any(
            name.strip().lower() == "q" and value.strip() in ("0", "0.0", "0.00", "0.000")
            for name, _, value in (parameter.partition("=") for parameter in parameters)
        )
        if not refused:
            return True
    return False


def _asked_for(scope: Scope) -> str | None:
    """The format the request asks for: ``_format`` over ``Accept``; None for no choice."""
    query: bytes = scope.get("query_string", b"")
    if b"_format" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if name == "_format":
                return str(value)
    for name, value in scope.get("headers", []):
        if name == b"accept":
            return str(value.decode("latin-1"))
    return None


class FhirFormat:
    """406 for a FHIR request that accepts no JSON; every other request passes as it is."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else ""
        if path.startswith(_PREFIX) and not path.startswith(_FILES):
            asked = _asked_for(scope)
            if asked is not None and not acceptable(asked):
                problem = FhirError(
                    406,
                    [
                        Issue(
                            "not-supported",
                            "this server answers in JSON only: accept application/fhir+json",
                        )
                    ],
                )
                await outcome_response(problem)(scope, receive, send)
                return
        await self.app(scope, receive, send)
