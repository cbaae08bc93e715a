"""A light HTTP/1.1 load client: N keep-alive connections on one asyncio loop.

On a two-core machine the client competes with the server for CPU, so it must cost
as little as it can: a general-purpose client (httpx) spends several hundred
microseconds of Python per request, this one a few tens. It speaks only what the
benchmarks need: GET with fixed headers (``run_load``), or flows of GET, POST and PUT
requests with JSON bodies where each step may depend on the answer to the one before
(``run_flows``: create a record, then read, search and update it), and responses with
Content-Length or chunked. Each request's latency runs from writing the request to
reading the last body byte.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Generator, Sequence
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


def request_bytes(
    host: str,
    port: int,
    path: str,
    token: str | None,
    *,
    method: str = "GET",
    body: bytes | None = None,
) -> bytes:
    """One HTTP/1.1 request; a ``body`` is sent as ``application/fhir+json``."""
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Accept: application/fhir+json",
        "User-Agent: carevault-bench",
    ]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if body is not None:
        lines += ["Content-Type: application/fhir+json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


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


#: One step of a flow: (operation name, request bytes, the status that means success).
Step = tuple[str, bytes, int]
#: A flow yields its steps and is sent each answer as (status, body); it ends (returns)
#: when its sequence is done, or early when an answer leaves it nothing to go on.
Flow = Generator[Step, tuple[int, bytes], None]


@dataclass
class FlowResult:
    """What ``run_flows`` measured: one ``LoadResult`` per operation, and the flows begun
    and finished."""

    clients: int
    seconds: float = 0.0
    operations: dict[str, LoadResult] = field(default_factory=dict)
    flows_started: int = 0
    flows_finished: int = 0

    @property
    def requests(self) -> int:
        return sum(result.requests for result in self.operations.values())

    @property
    def errors(self) -> int:
        return sum(result.errors for result in self.operations.values())

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def latencies(self) -> list[float]:
        return [value for result in self.operations.values() for value in result.latencies]

    def operation(self, name: str) -> LoadResult:
        if name not in self.operations:
            self.operations[name] = LoadResult(self.clients)
        return self.operations[name]

    def merge(self, other: FlowResult) -> None:
        self.seconds += other.seconds
        self.flows_started += other.flows_started
        self.flows_finished += other.flows_finished
        for name, result in other.operations.items():
            self.operation(name).merge(result)


async def _flow_client(
    host: str,
    port: int,
    make: Callable[[int], Flow],
    client: int,
    deadline: float,
    result: FlowResult,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            flow = make(client)
            result.flows_started += 1
            answer: tuple[int, bytes] | None = None
            try:
                while True:
                    operation, request, expected = (
                        next(flow) if answer is None else flow.send(answer)
                    )
                    started = time.perf_counter()
                    if started >= deadline:
                        # No step begins after the deadline: the flow is left unfinished.
                        flow.close()
                        return
                    writer.write(request)
                    answer = await _response(reader)
                    measured = result.operation(operation)
                    measured.latencies.append(time.perf_counter() - started)
                    measured.requests += 1
                    status = answer[0]
                    measured.statuses[status] = measured.statuses.get(status, 0) + 1
                    if status != expected:
                        measured.errors += 1
            except StopIteration:
                result.flows_finished += 1
    finally:
        writer.close()
        await writer.wait_closed()


def run_flows(
    host: str, port: int, make: Callable[[int], Flow], *, clients: int, seconds: float
) -> FlowResult:
    """``clients`` connections, each running flows made by ``make(client number)`` one
    after another, for ``seconds``: no step starts after that, and the elapsed time runs
    until the last answer is read."""
    result = FlowResult(clients)

    async def main() -> None:
        deadline = time.perf_counter() + seconds
        await asyncio.gather(
            *(_flow_client(host, port, make, n, deadline, result) for n in range(clients))
        )

    started = time.perf_counter()
    asyncio.run(main())
    result.seconds = time.perf_counter() - started
    return result
