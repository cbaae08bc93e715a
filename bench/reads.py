"""Measuring FHIR reads against running servers: the part fhir_read and keys_unwrap share.

A ``Side`` is one running server with its token and counters. ``alternate`` measures
several sides on the same cells (operation × clients) in rounds, the sides taking turns
in an order that flips every round (ABAB, then BABA) so that drift on the machine, such
as another job starting, falls on every side alike. A side's figures for a cell are the
sum of its rounds.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from bench.common import percentile
from bench.load import LoadResult, run_load
from bench.server import Server, password_token, running_server
from bench.serving import HKID_SYSTEM, Deployment, LedgerSizes, Seeded, prepare

Cell = tuple[str, int]


@dataclass
class Side:
    """One running server, the token its clients send, and what was measured on it."""

    name: str
    target: Deployment
    seeded: Seeded
    server: Server
    token: str
    ledgers: LedgerSizes
    results: dict[Cell, LoadResult] = field(default_factory=dict)
    cpu: dict[Cell, float] = field(default_factory=dict)
    audit: dict[Cell, int] = field(default_factory=dict)
    unwraps: dict[Cell, int] = field(default_factory=dict)
    #: CPU seconds this side's server spent while another side was measured on a cell,
    #: and the seconds those turns lasted: an idle side must cost (nearly) nothing.
    idle_cpu: dict[Cell, float] = field(default_factory=dict)
    idle_seconds: dict[Cell, float] = field(default_factory=dict)

    def figures(self, cell: Cell) -> dict[str, Any]:
        result = self.results[cell]
        operation, clients = cell
        return {
            "side": self.name,
            "operation": operation,
            "clients": clients,
            "requests": result.requests,
            "errors": result.errors,
            "statuses": result.statuses,
            "seconds": round(result.seconds, 3),
            "per_second": round(result.per_second, 1),
            "p50_ms": round(percentile(result.latencies, 50) * 1e3, 3),
            "p99_ms": round(percentile(result.latencies, 99) * 1e3, 3),
            "server_cpu_ms_per_request": round(self.cpu[cell] / result.requests * 1e3, 3),
            "audit_entries": self.audit[cell],
            "unwraps": self.unwraps[cell],
            "idle_cpu_ms_per_second": (
                round(self.idle_cpu[cell] / self.idle_seconds[cell] * 1e3, 2)
                if self.idle_seconds.get(cell)
                else None
            ),
        }


def start_side(
    stack: ExitStack,
    name: str,
    target: Deployment,
    workdir: Path,
    *,
    role: str,
    warm_reads: int | None = None,
    **seed_options: Any,
) -> Side:
    """Seed ``target``, serve it, sign in as ``role``, check its answers and warm it up."""
    seeded = prepare(target, roles=[role], **seed_options)
    print(f"  {target.label}: seeded {seeded.resources:,} resources in {seeded.seconds:.1f} s")
    server = stack.enter_context(running_server(target, workdir))
    ledgers = LedgerSizes(target)
    stack.callback(ledgers.close)
    side = Side(
        name, target, seeded, server, password_token(server.url, seeded.login(role)), ledgers
    )
    check_answers(side)
    warm_up(side, warm_reads)
    return side


def operation_paths(operation: str, seeded: Seeded, order: Sequence[int]) -> list[str]:
    """``read``: GET Patient/<id>; ``search``: GET Patient?identifier=<HKID system>|<HKID>."""
    if operation == "read":
        return [f"/fhir/Patient/{seeded.patients[i].resource_id}" for i in order]
    return [
        "/fhir/Patient?identifier=" + quote(f"{HKID_SYSTEM}|{seeded.patients[i].hkid}", safe="")
        for i in order
    ]


def check_answers(side: Side) -> None:
    """The server answers what the benchmark asks, before anything is measured."""
    patient = side.seeded.patients[0]
    headers = {"Authorization": f"Bearer {side.token}"}
    with httpx.Client(base_url=side.server.url, headers=headers, timeout=30) as client:
        read = client.get(f"/fhir/Patient/{patient.resource_id}")
        if read.status_code != 200 or read.json()["id"] != patient.resource_id:
            raise RuntimeError(f"{side.name}: read failed: {read.status_code} {read.text[:300]}")
        found = client.get(
            "/fhir/Patient", params={"identifier": f"{HKID_SYSTEM}|{patient.hkid}"}
        ).json()
        # No total: an officer may not read HKIDs, and a search by one tells only what it
        # shows (gate.withholds_counts); the page holds the one patient.
        entries = found.get("entry") or []
        if len(entries) != 1 or entries[0]["resource"]["id"] != patient.resource_id:
            raise RuntimeError(f"{side.name}: search by HKID failed: {json.dumps(found)[:300]}")


def warm_up(side: Side, reads: int | None = None, processes: int = 1) -> None:
    """Read every patient once, or ``reads`` of them (every data key read is then cached,
    if the cache is on), then search a few hundred times, so that no first-use cost
    lands in a measurement.

    A server of several ``processes`` (uvicorn's workers) keeps a data-key cache and a
    release-budget cache in each: every patient is then read through every process
    (``warm_every_process``), not once through whichever process took the connection,
    which left about one measured read in five unwrapping a key (bench.fhir_read_workers).
    """
    host, port = side.server.host_port
    order = list(range(len(side.seeded.patients)))
    if processes > 1 and reads is None:
        warm_every_process(side, processes)
    else:
        paths = operation_paths("read", side.seeded, order)
        run_load(
            host, port, paths, token=side.token, clients=8, seconds=120, limit=reads or len(order)
        )
    paths = operation_paths("search", side.seeded, order)
    run_load(host, port, paths, token=side.token, clients=8, seconds=120, limit=200)


def warm_every_process(side: Side, processes: int, per_process: int = 4) -> None:
    """Read every patient through each of the server's ``processes``: connections are
    opened until each process holds ``per_process`` of them (which process accepted a
    connection is read from /proc), then each process's connections share the patients."""
    host, port = side.server.host_port
    paths = operation_paths("read", side.seeded, range(len(side.seeded.patients)))
    headers = {"Authorization": f"Bearer {side.token}", "Accept": "application/fhir+json"}
    pinned: dict[int, list[http.client.HTTPConnection]] = {}
    deadline = time.monotonic() + 120
    while len(pinned) < processes or any(len(held) < per_process for held in pinned.values()):
        if time.monotonic() > deadline:
            for held in pinned.values():
                for connection in held:
                    connection.close()
            raise RuntimeError(
                f"{side.name}: connections reached {len(pinned)} of {processes} processes"
            )
        connection = http.client.HTTPConnection(host, port, timeout=60)
        _get(connection, paths[0], headers)
        pid = side.server.process_serving(connection.sock.getsockname()[1])
        if pid is None or len(pinned.get(pid, [])) >= per_process:
            connection.close()
            continue
        pinned.setdefault(pid, []).append(connection)

    def read_share(connection: http.client.HTTPConnection, share: Sequence[str]) -> None:
        try:
            for path in share:
                _get(connection, path, headers)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=processes * per_process) as pool:
        futures = [
            pool.submit(read_share, connection, paths[index :: len(held)])
            for held in pinned.values()
            for index, connection in enumerate(held)
        ]
        for future in futures:
            future.result()


def _get(connection: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> None:
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"warming up: GET {path} answered {response.status}")


def measure(side: Side, cell: Cell, paths: Sequence[str], seconds: float, offset: int) -> None:
    """One timed run of ``cell`` on ``side``, added to what the side already holds."""
    operation, clients = cell
    host, port = side.server.host_port
    audit_before, unwraps_before = side.ledgers.audit(), side.ledgers.unwraps()
    cpu_before = side.server.cpu_seconds()
    result = run_load(
        host, port, paths, token=side.token, clients=clients, seconds=seconds, offset=offset
    )
    side.cpu[cell] = side.cpu.get(cell, 0.0) + side.server.cpu_seconds() - cpu_before
    side.audit[cell] = side.audit.get(cell, 0) + side.ledgers.audit() - audit_before
    side.unwraps[cell] = side.unwraps.get(cell, 0) + side.ledgers.unwraps() - unwraps_before
    if cell in side.results:
        side.results[cell].merge(result)
    else:
        side.results[cell] = result


def alternate(
    sides: Sequence[Side],
    cells: Sequence[Cell],
    *,
    rounds: int,
    seconds: float,
    order: Sequence[int],
) -> None:
    """Measure every cell on every side, in rounds, the sides' order flipping each round.

    Every side reads the same patients in the same ``order``; each round starts where
    the previous one stopped, so rounds do not re-read the same few patients.
    """
    for cell in cells:
        offset = 0
        for round_number in range(rounds):
            turn = list(sides) if round_number % 2 == 0 else list(reversed(sides))
            sent = 0
            for side in turn:
                before = side.results[cell].requests if cell in side.results else 0
                idle = [other for other in sides if other is not side]
                idle_before = [other.server.cpu_seconds() for other in idle]
                began = time.perf_counter()
                measure(side, cell, operation_paths(cell[0], side.seeded, order), seconds, offset)
                lasted = time.perf_counter() - began
                for other, cpu_before in zip(idle, idle_before, strict=True):
                    spent = other.server.cpu_seconds() - cpu_before
                    other.idle_cpu[cell] = other.idle_cpu.get(cell, 0.0) + spent
                    other.idle_seconds[cell] = other.idle_seconds.get(cell, 0.0) + lasted
                sent = max(sent, side.results[cell].requests - before)
            offset += sent
        line = ", ".join(f"{side.name} {side.results[cell].per_second:,.0f}/s" for side in sides)
        print(f"  {cell[0]} x{cell[1]}: {line}", flush=True)
