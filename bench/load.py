"""A light HTTP/1.1 load client: N keep-alive connections on one asyncio loop.

On a two-core machine the client competes with the server for CPU, so it must cost
as little as it can: a general-purpose client (httpx) spends several hundred
microseconds of Python per request, this one a few tens. It speaks only what the
benchmarks need: GET with fixed headers, responses with Content-Length or chunked.
Each request's latency runs from writing the request to reading the last body byte.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    clients: int
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def merge(self, other: LoadResult) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.seconds += other.seconds
        self.latencies += other.latencies
        for status, count in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + count


class ProtocolError(RuntimeError):
    """The server answered something this client does not understand."""


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length: int | None = None
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        lowered = name.strip().lower()
        if lowered == b"content-length":
            length = int(value)
        elif lowered == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if length is not None:
        return status, await reader.readexactly(length)
    if not chunked:
        raise ProtocolError("response without Content-Length or chunked encoding")
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
        if size == 0:
            return status, b"".join(parts)


async def _client(
    host: str,
    port: int,
    pick: Callable[[], bytes | None],
    deadline: float,
    result: LoadResult,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            started = time.perf_counter()
            request = pick() if started < deadline else None
            if request is None:
                return
            writer.write(request)
            status, _ = await _response(reader)
            result.latencies.append(time.perf_counter() - started)
            result.requests += 1
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if status != 200:
                result.errors += 1
    finally:
        writer.close()
        await writer.wait_closed()


def request_bytes(host: str, port: int, path: str, token: str | None) -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Accept: application/fhir+json",
        "User-Agent: carevault-bench",
    ]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def run_load(
    host: str,
    port: int,
    paths: Sequence[str],
    *,
    token: str | None,
    clients: int,
    seconds: float,
    offset: int = 0,
    limit: int | None = None,
) -> LoadResult:
    """``clients`` connections sending GETs of ``paths`` in turn, from ``paths[offset]``,
    for ``seconds`` (or until ``limit`` requests were sent, if that comes first).

    Requests started before the deadline are finished and counted; the elapsed time
    runs until the last one is done.
    """
    requests = [request_bytes(host, port, path, token) for path in paths]
    counter = itertools.count().__next__
    result = LoadResult(clients)

    def pick() -> bytes | None:
        index = counter()
        if limit is not None and index >= limit:
            return None
        return requests[(offset + index) % len(requests)]

    async def main() -> None:
        deadline = time.perf_counter() + seconds
        await asyncio.gather(*(_client(host, port, pick, deadline, result) for _ in range(clients)))

    started = time.perf_counter()
    asyncio.run(main())
    result.seconds = time.perf_counter() - started
    return result
