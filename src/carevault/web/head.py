"""HEAD of the FHIR reads: answered as the GET it stands for, without the body.

R4 (http.html) asks servers to support HEAD for read, vread, search, history and the
capability statement. A HEAD of a FHIR path is handed to the app as that very GET, so it
passes everything a GET passes (the guard, the gate's decision, the ledger entry, the
release budget): looking at a record's headers is reading it, and is recorded as such,
the entry saying it was a HEAD (``asked_method``: the caller carries it to the gate).
Only the body is dropped on the way out; ``Content-Length`` says how long the GET's body
is (RFC 9110 9.3.2), counted from what was sent rather than trusted.

Operations (a path segment starting with ``$``: ``$export``, ``$export-status``,
``$everything``...) are not answered for HEAD: their GET may start or advance something
(a GET kick-off starts an export), which a HEAD must never do. Paths outside ``/fhir``
keep what their routes answer (405 where they take no HEAD).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Statuses whose answer never has a body: their headers are passed on as they are.
_BODILESS = frozenset({204, 304})
#: The scope key naming the method the client sent, where the app was handed another.
_ASKED_METHOD = "carevault.asked_method"


def asked_method(scope: Scope) -> str:
    """The HTTP method the client sent: HEAD for a HEAD served as its GET."""
    asked = scope.get(_ASKED_METHOD)
    return asked if isinstance(asked, str) else str(scope.get("method", ""))


def answers_head(path: str) -> bool:
    """Whether a HEAD of ``path`` (the app's own path, without its root) is answered as
    its GET: a FHIR path naming no operation."""
    if path != "/fhir" and not path.startswith("/fhir/"):
        return False
    return not any(segment.startswith("$") for segment in path.split("/"))


def own_path(scope: Scope) -> str:
    """The request's path as the app's routes see it (without the root path)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root + "/"):
        return path[len(root) :]
    return path


class HeadAsGet:
    """A HEAD of a FHIR read is served as its GET, answered without the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "HEAD"
            or not answers_head(own_path(scope))
        ):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        length = 0

        async def headers_only(message: Message) -> None:
            nonlocal start, length
            if message["type"] == "http.response.start":
                # Held until the body is complete: its length is counted, not assumed.
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            length += len(message.get("body", b""))
            if message.get("more_body", False):
                return
            if start["status"] not in _BODILESS:
                MutableHeaders(scope=start)["content-length"] = str(length)
            await send(start)
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        # A copy: the server keeps its own scope, and must still know this was a HEAD
        # (uvicorn then sends no body and expects none).
        await self.app({**scope, "method": "GET", _ASKED_METHOD: "HEAD"}, receive, headers_only)
