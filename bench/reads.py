"""Measuring FHIR reads against running servers: the part fhir_read and keys_unwrap share.

A ``Side`` is one running server with its token and counters. ``alternate`` measures
several sides on the same cells (operation × clients) in rounds, the sides taking turns
in an order that flips every round (ABAB, then BABA) so that drift on the machine, such
as another job starting, falls on every side alike. A side's figures for a cell are the
sum of its rounds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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
        if found.get("total") != 1 or found["entry"][0]["resource"]["id"] != patient.resource_id:
            raise RuntimeError(f"{side.name}: search by HKID failed: {json.dumps(found)[:300]}")


def warm_up(side: Side, reads: int | None = None) -> None:
    """Read every patient once, or ``reads`` of them (every data key read is then cached,
    if the cache is on), then search a few hundred times, so that no first-use cost
    lands in a measurement."""
    host, port = side.server.host_port
    order = list(range(len(side.seeded.patients)))
    for operation, limit in (("read", reads or len(order)), ("search", 200)):
        paths = operation_paths(operation, side.seeded, order)
        run_load(host, port, paths, token=side.token, clients=8, seconds=120, limit=limit)


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
                measure(side, cell, operation_paths(cell[0], side.seeded, order), seconds, offset)
                sent = max(sent, side.results[cell].requests - before)
            offset += sent
        line = ", ".join(f"{side.name} {side.results[cell].per_second:,.0f}/s" for side in sides)
        print(f"  {cell[0]} x{cell[1]}: {line}", flush=True)
