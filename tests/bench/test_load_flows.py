"""The load client's flows (``bench/load.py``) against a small real HTTP server on
loopback, and the mixed benchmark's family names (``bench/mixed.py``)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator

import pytest
from bench.load import Flow, request_bytes, run_flows
from bench.mixed import family_names


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """POST → 201 with an id; GET of /missing → 404; any other GET or PUT → 200 with the
    request's method, path and body echoed (chunked for GET, to cover both framings)."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            method, path = head.split(b" ")[:2]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length) if length else b""
            echo = json.dumps(
                {"method": method.decode(), "path": path.decode(), "body": body.decode()}
            ).encode()
            if method == b"POST":
                payload = json.dumps({"id": "p-1", "sent": json.loads(body)}).encode()
                writer.write(
                    b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload
                )
            elif path == b"/missing":
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            elif method == b"GET":
                writer.write(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + b"%x\r\n" % len(echo)
                    + echo
                    + b"\r\n0\r\n\r\n"
                )
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(echo) + echo)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


@pytest.fixture
def echo_server() -> Iterator[int]:
    ready = threading.Event()
    running: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def serve() -> None:
        server = await asyncio.start_server(_answer, "127.0.0.1", 0)
        stop = asyncio.Event()
        running.append((server.sockets[0].getsockname()[1], asyncio.get_running_loop(), stop))
        ready.set()
        async with server:
            await stop.wait()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    assert ready.wait(10)
    port, loop, stop = running[0]
    yield port
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)


def test_flows_send_bodies_follow_answers_and_count_each_operation(echo_server: int) -> None:
    seen: list[dict[str, str]] = []

    def make(client: int) -> Flow:
        created = yield (
            "create",
            request_bytes("127.0.0.1", echo_server, "/P", "t", method="POST", body=b'{"a": 1}'),
            201,
        )
        resource_id = json.loads(created[1])["id"]
        read = yield "read", request_bytes("127.0.0.1", echo_server, f"/P/{resource_id}", "t"), 200
        seen.append(json.loads(read[1]))
        body = json.dumps({"id": resource_id, "client": client}).encode()
        path = f"/P/{resource_id}"
        yield (
            "update",
            request_bytes("127.0.0.1", echo_server, path, "t", method="PUT", body=body),
            200,
        )
        yield "missing", request_bytes("127.0.0.1", echo_server, "/missing", "t"), 200

    result = run_flows("127.0.0.1", echo_server, make, clients=3, seconds=0.3)

    assert result.flows_finished > 0
    assert result.flows_started - result.flows_finished <= 3  # at most one cut short each
    counts = {name: measured.requests for name, measured in result.operations.items()}
    assert counts["create"] >= counts["read"] >= counts["update"] >= counts["missing"]
    assert counts["create"] - counts["missing"] <= 3
    assert result.requests == sum(counts.values())
    # The id from each create's answer was used by the read that followed it.
    assert seen and all(s == {"method": "GET", "path": "/P/p-1", "body": ""} for s in seen)
    # Answers other than the expected status are errors, of that operation only.
    assert result.operations["missing"].errors == counts["missing"]
    assert result.operations["missing"].statuses == {404: counts["missing"]}
    assert result.errors == counts["missing"]
    assert result.operations["create"].statuses == {201: counts["create"]}
    assert len(result.latencies()) == result.requests


def test_request_bytes_frame_a_body() -> None:
    request = request_bytes("h", 1, "/x", "tok", method="PUT", body=b"{}")
    head, _, body = request.partition(b"\r\n\r\n")
    assert head.startswith(b"PUT /x HTTP/1.1\r\n")
    assert b"Content-Length: 2" in head and b"Authorization: Bearer tok" in head
    assert body == b"{}"
    assert request_bytes("h", 1, "/x", None).endswith(b"\r\n\r\n")


def test_family_names_are_distinct_letters_and_none_begins_another() -> None:
    names = family_names("mx")
    drawn = [names() for _ in range(5000)]
    assert len(set(drawn)) == len(drawn)
    assert all(name.isalpha() and name.islower() for name in drawn)
    assert len({len(name) for name in drawn}) == 1
