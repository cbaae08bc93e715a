"""``HeadAsGet`` alone (no app, no database): which paths a HEAD is served as GET for,
and what leaves: the GET's status and headers, Content-Length counted from the body
that was dropped."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from carevault.web.head import HeadAsGet, answers_head


@pytest.mark.parametrize(
    ("path", "answered"),
    [
        ("/fhir/metadata", True),
        ("/fhir/Patient/p1", True),
        ("/fhir/Patient/p1/_history/2", True),
        ("/fhir/Patient", True),
        ("/fhir/_history", True),
        ("/fhir/AuditEvent", True),
        ("/fhir/$export", False),
        ("/fhir/Patient/$export", False),
        ("/fhir/Group/g1/$export", False),
        ("/fhir/$export-status/j1", False),
        ("/fhir/Patient/p1/$everything", False),
        ("/fhirish", False),
        ("/admin/exports", False),
        ("/console/", False),
    ],
)
def test_only_fhir_reads_are_answered_for_head(path: str, answered: bool) -> None:
    assert answers_head(path) is answered


def _serve(method: str, path: str, status: int, chunks: list[bytes], length: str | None) -> Any:
    """What the middleware sends for an app answering ``chunks``, and what the app saw."""
    seen: dict[str, Any] = {}
    sent: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen["method"] = scope["method"]
        headers = [(b"content-type", b"application/fhir+json")]
        if length is not None:
            headers.append((b"content-length", length.encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        for n, chunk in enumerate(chunks):
            more = n < len(chunks) - 1
            await send({"type": "http.response.body", "body": chunk, "more_body": more})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
    asyncio.run(HeadAsGet(app)(scope, receive, send))
    assert scope["method"] == method  # the server's own scope is left as it was
    return seen["method"], sent


def test_a_head_is_the_get_to_the_app_and_leaves_with_its_length_and_no_body() -> None:
    method, sent = _serve("HEAD", "/fhir/Patient", 200, [b'{"a":', b"1}"], None)
    assert method == "GET"
    start, body = sent
    assert start["status"] == 200
    assert dict(start["headers"])[b"content-length"] == b"7"
    assert dict(start["headers"])[b"content-type"] == b"application/fhir+json"
    assert body == {"type": "http.response.body", "body": b"", "more_body": False}


def test_a_length_the_app_declared_is_replaced_by_the_one_counted() -> None:
    _, sent = _serve("HEAD", "/fhir/metadata", 200, [b"12345"], "99")
    assert dict(sent[0]["headers"])[b"content-length"] == b"5"


def test_a_not_modified_keeps_its_headers() -> None:
    _, sent = _serve("HEAD", "/fhir/Patient/p1", 304, [b""], None)
    assert sent[0]["status"] == 304
    assert b"content-length" not in dict(sent[0]["headers"])


def test_other_requests_pass_through_untouched() -> None:
    for method, path in (("HEAD", "/fhir/$export"), ("GET", "/fhir/Patient")):
        seen, sent = _serve(method, path, 200, [b"ab", b"c"], "3")
        assert seen == method
        assert [message.get("body") for message in sent] == [None, b"ab", b"c"]
