"""A mixed FHIR workload in Medplum's proportions: creates, reads, searches and updates,
p50/p95/p99 per operation and overall throughput, the encrypted server against its
unencrypted baseline in the same run, SQLite and PostgreSQL, ``serve --workers 1`` and
``--workers 2``.

The proportions. Medplum publishes its mixed FHIR load as one sequence per virtual
user, repeated: create a Patient with a random name (``POST /fhir/R4/Patient``), read it
by id, search for it by name, i.e. create : read : search = 1 : 1 : 1. Its load-testing
guide (medplum/medplum, ``packages/docs/docs/self-hosting/load-testing.md``, "Create,
Read, and Search") reports 504 requests/s for that flow (p95 262 ms, on three 4-vCPU
servers and a t4g.medium PostgreSQL); its 2026 benchmark (``packages/docs/blog/
2026-03-30-medplum-performance-test/``, scenario 4, "Authenticated, read, write, and
search") runs the same three steps on 15 servers, 6,738 requests/s at the peak. Neither
has an update, which issue 15 asks for: each flow here ends with one, so the mix is
create : read : search : update = 1 : 1 : 1 : 1 (``--no-update`` runs Medplum's three
steps alone). Medplum's figures come from other hardware and are not a baseline; they
are quoted for scale only.

Each of ``--clients`` (32) keep-alive connections runs flows one after another:

1. ``POST /fhir/Patient``: a new patient (a random family name, a given name, gender,
   birth date, a phone number), registered at the clinician's own clinic (201);
2. ``GET /fhir/Patient/<id>`` of the patient just created (200);
3. ``GET /fhir/Patient?name=<family>`` (200, a searchset of one);
4. ``PUT /fhir/Patient/<id>``: the same patient with a new phone number (200).

Every request is a physician's, signed in by the direct grant with ``user/*.cruds``: a
clinician may write identity, contact and demographic data of patients at their clinic
(``domain/roles.py``). The physician's detection responses are set to raise only and
their release budget is generous, as the read benchmarks do for their reader: the load
opens a thousand new patients a minute, and a step-up would measure refusals.

Per backend, two data directories are seeded alike with ``--patients`` patients (the
Patient resources and the clinic group's directory, through ``bench.serving``): one
encrypted, one not (the benchmark environment alone allows that). For each process
count both are served at once and take turns in rounds (ABAB, BABA); the figures of a
side are the sum of its rounds. The data grow with the creates; both sides grow alike.
The audit ledger is read before and after every run: the entries added must cover every
request answered (one per create, read, search and update). Server CPU comes from
``/proc`` (every process of the server).

    .venv/bin/python -m bench.mixed            # a few minutes
    .venv/bin/python -m bench.mixed --quick    # a smoke run, under a minute
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import string
import tempfile
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from bench.common import Table, now, percentile, ratio, write_results
from bench.load import Flow, FlowResult, request_bytes, run_flows
from bench.server import Server, password_token, running_server
from bench.serving import (
    Deployment,
    LedgerSizes,
    Login,
    deployment,
    postgres_database,
    postgres_version,
    prepare,
)

NAME = "mixed"
ROLE = "physician"
OPERATIONS = ("create", "read", "search", "update")
BACKENDS = ("sqlite", "postgres")
SIDES = ("baseline", "encrypted")
#: What Medplum's guide reports for its create-read-search flow (requests/s), for scale.
MEDPLUM_MIXED_PER_SECOND = 504
EXPECTED = {"create": 201, "read": 200, "search": 200, "update": 200}
GENEROUS = f"{ROLE}=1000000/10000000"
RAISES_ONLY = ",".join(
    f"{ROLE}:{severity}=raise" for severity in ("low", "medium", "high", "critical")
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m bench.{NAME}", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: small and short")
    parser.add_argument("--patients", type=int, help="patients seeded per deployment (2000)")
    parser.add_argument("--seconds", type=float, help="seconds per side per round (6)")
    parser.add_argument("--rounds", type=int, help="rounds (2)")
    parser.add_argument("--clients", type=int, help="concurrent clients (32)")
    parser.add_argument(
        "--workers", help="server process counts, comma-separated (1,2; --quick: 1)"
    )
    parser.add_argument("--backends", help="sqlite,postgres (both)")
    parser.add_argument(
        "--no-update", action="store_true", help="Medplum's flow alone: create, read, search"
    )
    options = parser.parse_args(argv)
    options.patients = options.patients or (50 if options.quick else 2000)
    options.seconds = options.seconds or (1.0 if options.quick else 6.0)
    options.rounds = options.rounds or (1 if options.quick else 2)
    options.clients = options.clients or (8 if options.quick else 32)
    options.workers = tuple(
        int(n) for n in (options.workers or ("1" if options.quick else "1,2")).split(",")
    )
    options.backends = tuple(
        (options.backends or ("sqlite" if options.quick else ",".join(BACKENDS))).split(",")
    )
    if not set(options.backends) <= set(BACKENDS):
        parser.error(f"--backends takes {', '.join(BACKENDS)}")
    return options


# --- the flow ----------------------------------------------------------------------------


def family_names(prefix: str) -> Callable[[], str]:
    """Distinct family names of letters only and of one length (a name search matches
    prefixes: no name may begin another): ``prefix`` and a counter in base 26."""
    counter = itertools.count(1).__next__

    def next_name() -> str:
        number, letters = counter(), []
        for _ in range(6):
            number, digit = divmod(number, 26)
            letters.append(string.ascii_lowercase[digit])
        return prefix + "".join(reversed(letters))

    return next_name


def patient_body(family: str, clinic: str, rng: random.Random, resource_id: str | None) -> bytes:
    resource: dict[str, Any] = {"resourceType": "Patient"}
    if resource_id is not None:
        resource["id"] = resource_id
    resource.update(
        {
            "name": [{"use": "official", "family": family, "given": ["Mixed"]}],
            "gender": rng.choice(("female", "male")),
            "birthDate": f"{rng.randint(1940, 2020)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
            "telecom": [{"system": "phone", "value": f"9{rng.randrange(10**7):07d}"}],
            "managingOrganization": {"reference": f"Organization/{clinic}"},
        }
    )
    return json.dumps(resource).encode()


@dataclass
class Workload:
    """The flows one side's clients run: every request with the side's token."""

    host: str
    port: int
    token: str
    clinic: str
    names: Callable[[], str]
    update: bool = True
    rng: random.Random = field(default_factory=lambda: random.Random(NAME))

    def flow(self, _client: int) -> Flow:
        family = self.names()
        host, port, token = self.host, self.port, self.token
        created = yield (
            "create",
            request_bytes(
                host,
                port,
                "/fhir/Patient",
                token,
                method="POST",
                body=patient_body(family, self.clinic, self.rng, None),
            ),
            201,
        )
        if created[0] != 201:
            return
        resource_id = json.loads(created[1])["id"]
        yield "read", request_bytes(host, port, f"/fhir/Patient/{resource_id}", token), 200
        search = "/fhir/Patient?name=" + quote(family, safe="")
        yield "search", request_bytes(host, port, search, token), 200
        if self.update:
            body = patient_body(family, self.clinic, self.rng, resource_id)
            path = f"/fhir/Patient/{resource_id}"
            yield "update", request_bytes(host, port, path, token, method="PUT", body=body), 200


# --- the sides ---------------------------------------------------------------------------


@dataclass
class Side:
    """One deployment: its login, its ledgers and, while it runs, its server."""

    name: str
    target: Deployment
    login: Login
    ledgers: LedgerSizes
    token: str = ""
    results: dict[int, FlowResult] = field(default_factory=dict)
    cpu: dict[int, float] = field(default_factory=dict)
    audit: dict[int, int] = field(default_factory=dict)

    @property
    def clinic(self) -> str:
        return sorted(self.login.clinic_ids)[0]


def check_flow(side: Side, server: Server, workers: int) -> None:
    """One flow by hand before anything is measured: each answer is what it should be."""
    headers = {"Authorization": f"Bearer {side.token}", "Content-Type": "application/fhir+json"}
    rng = random.Random(f"{NAME}:check")
    family = f"check{side.name}w{string.ascii_lowercase[workers]}"
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        created = client.post("/fhir/Patient", content=patient_body(family, side.clinic, rng, None))
        if created.status_code != 201:
            raise RuntimeError(f"{side.name}: create: {created.status_code} {created.text[:300]}")
        resource_id = created.json()["id"]
        read = client.get(f"/fhir/Patient/{resource_id}")
        if read.status_code != 200 or read.json()["name"][0]["family"] != family:
            raise RuntimeError(f"{side.name}: read: {read.status_code} {read.text[:300]}")
        found = client.get("/fhir/Patient", params={"name": family}).json()
        if found.get("total") != 1 or found["entry"][0]["resource"]["id"] != resource_id:
            raise RuntimeError(f"{side.name}: search by name: {json.dumps(found)[:300]}")
        body = patient_body(family, side.clinic, rng, resource_id)
        updated = client.put(f"/fhir/Patient/{resource_id}", content=body)
        if updated.status_code != 200:
            raise RuntimeError(f"{side.name}: update: {updated.status_code} {updated.text[:300]}")


def measure(
    side: Side, server: Server, workers: int, workload: Workload, options: argparse.Namespace
) -> None:
    host, port = server.host_port
    audit_before, cpu_before = side.ledgers.audit(), server.cpu_seconds()
    result = run_flows(host, port, workload.flow, clients=options.clients, seconds=options.seconds)
    side.cpu[workers] = side.cpu.get(workers, 0.0) + server.cpu_seconds() - cpu_before
    side.audit[workers] = side.audit.get(workers, 0) + side.ledgers.audit() - audit_before
    if workers in side.results:
        side.results[workers].merge(result)
    else:
        side.results[workers] = result


def run_backend(backend: str, options: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    print(f"{backend}:", flush=True)
    rows: list[dict[str, Any]] = []
    with ExitStack() as stack:
        sides: list[Side] = []
        for name in SIDES:
            label = f"{backend}-mixed-{name}"
            database = (
                stack.enter_context(postgres_database(f"mixed_{name}"))
                if backend == "postgres"
                else None
            )
            target = deployment(
                label,
                workdir / label,
                database,
                encryption=name == "encrypted",
                dek_cache_seconds=3600,
                release_budget=GENEROUS,
                detect_responses=RAISES_ONLY,
            )
            seeded = prepare(target, roles=[ROLE], patients=options.patients)
            print(f"  {name}: seeded {seeded.resources:,} resources in {seeded.seconds:.1f} s")
            ledgers = LedgerSizes(target)
            stack.callback(ledgers.close)
            sides.append(Side(name, target, seeded.login(ROLE), ledgers))
        for workers in options.workers:
            with ExitStack() as running:
                servers = [
                    running.enter_context(running_server(side.target, workdir, workers))
                    for side in sides
                ]
                workloads = []
                for side, server in zip(sides, servers, strict=True):
                    # One sign-in per data directory: a second within 30 s would present
                    # a TOTP code already used. The token outlives the server processes.
                    side.token = side.token or password_token(
                        server.url, side.login, scope="user/*.cruds"
                    )
                    check_flow(side, server, workers)
                    host, port = server.host_port
                    workload = Workload(
                        host,
                        port,
                        side.token,
                        side.clinic,
                        family_names(f"mx{string.ascii_lowercase[workers]}q"),
                        update=not options.no_update,
                    )
                    # A short warm-up: first-use costs (imports, caches, prepared
                    # statements, every process's pool) land outside the measurement.
                    run_flows(
                        host, port, workload.flow, clients=options.clients, seconds=1.0 + workers
                    )
                    workloads.append(workload)
                for round_number in range(options.rounds):
                    turn = list(range(len(sides)))
                    if round_number % 2:
                        turn.reverse()
                    for index in turn:
                        measure(sides[index], servers[index], workers, workloads[index], options)
                line = ", ".join(
                    f"{side.name} {side.results[workers].per_second:,.0f}/s" for side in sides
                )
                print(f"  {workers} worker(s): {line}", flush=True)
        for workers in options.workers:
            for side in sides:
                rows += figures(backend, side, workers)
    return rows


def figures(backend: str, side: Side, workers: int) -> list[dict[str, Any]]:
    result = side.results[workers]
    rows = []
    for operation in (*OPERATIONS, "all"):
        if operation == "all":
            latencies = result.latencies()
            requests, errors = result.requests, result.errors
            statuses: dict[int, int] = {}
            for measured in result.operations.values():
                for status, count in measured.statuses.items():
                    statuses[status] = statuses.get(status, 0) + count
        elif operation in result.operations:
            measured = result.operations[operation]
            latencies, requests = measured.latencies, measured.requests
            errors, statuses = measured.errors, measured.statuses
        else:
            continue
        rows.append(
            {
                "backend": backend,
                "workers": workers,
                "side": side.name,
                "operation": operation,
                "requests": requests,
                "errors": errors,
                "statuses": statuses,
                "seconds": round(result.seconds, 3),
                "per_second": round(requests / result.seconds, 1) if result.seconds else 0.0,
                "p50_ms": round(percentile(latencies, 50) * 1e3, 3),
                "p95_ms": round(percentile(latencies, 95) * 1e3, 3),
                "p99_ms": round(percentile(latencies, 99) * 1e3, 3),
                **(
                    {
                        "flows_started": result.flows_started,
                        "flows_finished": result.flows_finished,
                        "server_cpu_ms_per_request": round(
                            side.cpu[workers] / result.requests * 1e3, 3
                        ),
                        "audit_entries": side.audit[workers],
                        "every_request_recorded": side.audit[workers] >= result.requests,
                    }
                    if operation == "all"
                    else {}
                ),
            }
        )
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(argv)
    started = now()
    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-mixed-") as folder:
        for backend in options.backends:
            rows.extend(run_backend(backend, options, Path(folder)))
    load_after = os.getloadavg()
    mix = "1:1:1" if options.no_update else "1:1:1:1"
    table = Table(
        f"Mixed FHIR workload (create:read:search{'' if options.no_update else ':update'} = "
        f"{mix}), {options.clients} clients, encrypted vs unencrypted baseline",
        [
            "backend",
            "workers",
            "operation",
            "side",
            "requests/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "errors",
            "CPU ms/req",
            "audit entries / requests",
            "× baseline",
        ],
    )
    speeds = {(r["backend"], r["workers"], r["side"], r["operation"]): r for r in rows}
    for backend in options.backends:
        for workers in options.workers:
            for operation in ("all", *OPERATIONS):
                for side in SIDES:
                    row = speeds.get((backend, workers, side, operation))
                    if row is None:
                        continue
                    base = speeds[(backend, workers, "baseline", operation)]
                    table.add(
                        backend,
                        workers,
                        operation,
                        side,
                        row["per_second"],
                        row["p50_ms"],
                        row["p95_ms"],
                        row["p99_ms"],
                        row["errors"],
                        row.get("server_cpu_ms_per_request", ""),
                        f"{row['audit_entries']:,} / {row['requests']:,}"
                        if "audit_entries" in row
                        else "",
                        ratio(row["per_second"], base["per_second"]),
                    )
    table.notes += [
        "requests/s of an operation: its requests over the side's whole measured time "
        "(the operations share it); 'all' is the overall throughput",
        f"for scale only (other hardware, not a baseline): Medplum's guide reports "
        f"{MEDPLUM_MIXED_PER_SECOND} requests/s for its create-read-search flow",
        f"load average (1, 5, 15 min) at the start {load_before[0]:.1f} {load_before[1]:.1f} "
        f"{load_before[2]:.1f}, at the end {load_after[0]:.1f} {load_after[1]:.1f} "
        f"{load_after[2]:.1f}, on {os.cpu_count()} CPUs; the load client runs on the same "
        "cores",
    ]
    print(table.render())
    overall = [r for r in rows if r["operation"] == "all"]
    write_results(
        NAME,
        quick=options.quick,
        settings={**vars(options), "postgres": postgres_version()},
        results=rows,
        tables=[table],
        summary={
            "requests_per_second": {
                f"{r['backend']} {r['workers']}w {r['side']}": r["per_second"] for r in overall
            },
            "p95_ms": {f"{r['backend']} {r['workers']}w {r['side']}": r["p95_ms"] for r in overall},
            "every_request_recorded": all(r["every_request_recorded"] for r in overall),
            "errors": sum(r["errors"] for r in overall),
            "load_average_start": load_before,
            "load_average_end": load_after,
        },
        started=started,
    )


if __name__ == "__main__":
    main()
