"""The server's CPU per read by id, measured in process: the app itself (every middleware,
the route, token check, policy, SQL, decryption, subsetting, serialisation and the
ledger's durable group commit, and every background thread of the process: detectors,
ledger writer), driven over ASGI without sockets or an HTTP parser, timed by the
process's CPU clock. Load on the machine stretches wall time, hardly CPU time: the
figure is comparable across runs where reads/s are not.

One encrypted deployment is seeded; then, in rounds, a child process per copy of the
code (this one, and ``--baseline``: another copy's ``src/`` folder, e.g. main's before a
change) builds the app on that data, signs in (an account of its own: TOTP codes are
single use), reads every patient once (caches warm), then reads ``--reads`` patients
at ``--clients`` concurrent requests and reports CPU seconds, wall seconds and the
ledger entries written. The copies take turns (ABAB, BABA), so drift falls on each.

``--profile``: the last round of this code runs under cProfile in every thread (CPU
clock of each thread), written to ``bench/results/read_cpu-profile.txt``; cProfile
slows Python calls, so read shares from it, not totals.

    .venv/bin/python -m bench.read_cpu --baseline ../main/src
    .venv/bin/python -m bench.read_cpu --backends postgres --profile
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, Table, now, ratio, write_results
from bench.detect import GENEROUS, READER_RAISES
from bench.reads import operation_paths
from bench.serving import Deployment, LedgerSizes, deployment, postgres_database, prepare

NAME = "read_cpu"
ROLE = "privacy_officer"
HOST = b"127.0.0.1:8000"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m bench.{NAME}", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: small and short")
    parser.add_argument("--patients", type=int, help="patients (2000)")
    parser.add_argument("--reads", type=int, help="measured reads per round (4000)")
    parser.add_argument("--rounds", type=int, help="rounds (2)")
    parser.add_argument("--clients", type=int, help="concurrent requests (32)")
    parser.add_argument("--backends", help="sqlite,postgres (both)")
    parser.add_argument("--baseline", help="the src/ folder of another copy of CareVault")
    parser.add_argument("--profile", action="store_true", help="cProfile this code's last round")
    parser.add_argument("--name", help="results file name (read_cpu)")
    parser.add_argument(
        "--operation",
        choices=("read", "search"),
        default="read",
        help="read by id (default) or search by identifier",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    options.patients = options.patients or (200 if options.quick else 2000)
    options.reads = options.reads or (500 if options.quick else 4000)
    options.rounds = options.rounds or 2
    options.clients = options.clients or 32
    options.backends = tuple((options.backends or "sqlite,postgres").split(","))
    return options


# --- the child: one copy of the code, in process ---------------------------------------------


def _scope(method: str, path: str, token: str | None, body: bytes = b"") -> dict[str, Any]:
    headers = [(b"host", HOST), (b"accept", b"application/fhir+json")]
    headers.append((b"user-agent", b"carevault-bench"))
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    if body:
        headers.append((b"content-type", b"application/x-www-form-urlencoded"))
        headers.append((b"content-length", str(len(body)).encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path.split("?", 1)[0],
        "raw_path": path.split("?", 1)[0].encode(),
        "query_string": path.split("?", 1)[1].encode() if "?" in path else b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def _call(app: Any, scope: dict[str, Any], body: bytes = b"") -> tuple[int, bytes]:
    sent = False
    status = 0
    parts: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        elif message["type"] == "http.response.body":
            parts.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(parts)


class _ThreadProfiles:
    """cProfile in every thread of the process on each thread's CPU clock, from the moment
    ``on`` is set: a light hook installed in every thread from the start (the app's
    threads are started while it warms up) turns into a profiler at its thread's first
    call after that."""

    def __init__(self) -> None:
        self.on = False
        self.profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def install(self) -> None:
        threading.setprofile(self._hook)
        sys.setprofile(self._hook)

    def _hook(self, *_args: object) -> None:
        if not self.on:
            return
        profile = cProfile.Profile(time.thread_time)
        with self._lock:
            self.profiles.append(profile)
        profile.enable()  # replaces this hook in this thread


def _thread_cpu() -> dict[str, float]:
    """CPU seconds of each live thread of this process (user + system, from /proc), summed
    by the thread's kind: its name without a trailing number."""
    ticks = os.sysconf("SC_CLK_TCK")
    spent: dict[str, float] = {}
    for thread in threading.enumerate():
        try:
            fields = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
        except OSError:
            continue
        values = fields.rsplit(")", 1)[1].split()
        kind = thread.name.rstrip("0123456789_ ").split(" (")[0] or thread.name
        spent[kind] = spent.get(kind, 0.0) + (int(values[11]) + int(values[12])) / ticks
    return spent


def child(request: dict[str, Any]) -> dict[str, Any]:
    from urllib.parse import urlencode

    import pyotp

    from carevault.config import load_settings
    from carevault.sim.loader import DEMO_CLIENT_ID
    from carevault.web.app import create_app

    profiles = _ThreadProfiles()
    if request["profile"]:
        profiles.install()
    app = create_app(load_settings())
    paths: list[str] = request["paths"]
    clients: int = request["clients"]

    async def reads(order: Sequence[int], token: str) -> int:
        queue = iter(order)
        errors = 0

        async def one_client() -> None:
            nonlocal errors
            for index in queue:
                status, body = await _call(app, _scope("GET", paths[index], token))
                if status != 200:
                    errors += 1
                    # The refusal's reason (an OperationOutcome: no patient data).
                    print(f"read answered {status}: {body[:300]!r}", file=sys.stderr)

        await asyncio.gather(*(one_client() for _ in range(clients)))
        return errors

    async def main() -> dict[str, Any]:
        async with app.router.lifespan_context(app):
            totp_step = int(time.time() // 30)
            form = urlencode(
                {
                    "grant_type": "password",
                    "client_id": DEMO_CLIENT_ID,
                    "username": request["username"],
                    "password": request["password"],
                    "totp": pyotp.TOTP(request["totp_secret"]).at(totp_step * 30),
                    "scope": "user/*.rs",
                }
            ).encode()
            status, body = await _call(app, _scope("POST", "/auth/token", None, form), form)
            if status != 200:
                raise RuntimeError(f"token refused ({status}): {body[:300]!r}")
            token = json.loads(body)["access_token"]
            warm_errors = await reads(range(len(paths)), token)
            if warm_errors:
                raise RuntimeError(f"{warm_errors} reads failed while warming up")
            profiles.on = bool(request["profile"])
            threads_before = _thread_cpu()
            usage, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            errors = await reads(request["order"], token)
            after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - wall
            threads = {
                kind: round(cpu - threads_before.get(kind, 0.0), 3)
                for kind, cpu in _thread_cpu().items()
            }
            if profiles.profiles:
                _write_profile(profiles.profiles, Path(request["profile_to"]))
        return {
            "cpu_s": after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime,
            "system_s": after.ru_stime - usage.ru_stime,
            "switches": after.ru_nvcsw - usage.ru_nvcsw + after.ru_nivcsw - usage.ru_nivcsw,
            "wall_s": wall,
            "errors": errors,
            "totp_step": totp_step,
            "threads": threads,
        }

    return asyncio.run(main())


def _write_profile(profiles: list[cProfile.Profile], output: Path) -> None:
    stream = io.StringIO()
    stats = pstats.Stats(profiles[0], stream=stream)
    for profile in profiles[1:]:
        try:
            stats.add(profile)
        except TypeError:  # a thread that never called anything
            continue
    stats.sort_stats("cumulative").print_stats(90)
    stats.sort_stats("tottime").print_stats(60)
    output.write_text(stream.getvalue())


# --- the parent: seeding, rounds, the table -------------------------------------------------


def run_child(target: Deployment, code: str | None, request: dict[str, Any]) -> dict[str, Any]:
    env = target.server_environment()
    if code:
        env["PYTHONPATH"] = code
    # The request (every path, the order) goes in a file: a search's paths are too long
    # for a command line.
    asked = Path(request["profile_to"]).with_name("request.json")
    asked.write_text(json.dumps(request))
    done = subprocess.run(  # noqa: S603 - this interpreter, this module
        [sys.executable, "-m", f"bench.{NAME}", "--child", str(asked)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run_backend(backend: str, options: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    codes: list[tuple[str, str | None]] = [("this", None)]
    if options.baseline:
        codes.insert(0, ("baseline", str(Path(options.baseline).resolve())))
    with ExitStack() as stack:
        database = (
            stack.enter_context(postgres_database("readcpu")) if backend == "postgres" else None
        )
        target = deployment(
            f"{backend}-readcpu",
            workdir / backend,
            database,
            encryption=True,
            dek_cache_seconds=3600,
            release_budget=GENEROUS,
            detect_responses=READER_RAISES,
        )
        seeded = prepare(target, roles=[ROLE], patients=options.patients, accounts_per_role=4)
        print(f"{backend}: seeded {seeded.resources:,} resources in {seeded.seconds:.1f} s")
        ledgers = LedgerSizes(target)
        stack.callback(ledgers.close)
        paths = operation_paths(options.operation, seeded, range(len(seeded.patients)))
        rng = random.Random(f"{NAME}:{backend}")
        totals: dict[str, dict[str, Any]] = {
            name: {
                "cpu_s": 0.0,
                "system_s": 0.0,
                "switches": 0,
                "wall_s": 0.0,
                "reads": 0,
                "errors": 0,
                "audit": 0,
                "threads": {},
            }
            for name, _ in codes
        }
        logins = seeded.logins[ROLE]
        #: The TOTP step each account last signed in with: a code is accepted once.
        used: dict[int, int] = {}
        account = 0
        for round_number in range(options.rounds):
            turn = codes if round_number % 2 == 0 else list(reversed(codes))
            order = [rng.randrange(len(paths)) for _ in range(options.reads)]
            for name, code in turn:
                account = (account + 1) % len(logins)
                login = logins[account]
                if used.get(account, -1) >= int(time.time() // 30):
                    time.sleep(30 - time.time() % 30 + 0.5)
                last = round_number == options.rounds - 1 and name == "this"
                request = {
                    "paths": paths,
                    "order": order,
                    "clients": options.clients,
                    "username": login.username,
                    "password": login.password,
                    "totp_secret": login.totp_secret,
                    "profile": bool(options.profile and last),
                    "profile_to": str(workdir / "profile.txt"),
                }
                audit_before = ledgers.audit()
                result = run_child(target, code, request)
                used[account] = result["totp_step"]
                total = totals[name]
                total["cpu_s"] += result["cpu_s"]
                total["wall_s"] += result["wall_s"]
                total["system_s"] += result["system_s"]
                total["switches"] += result["switches"]
                for kind, cpu in result["threads"].items():
                    total["threads"][kind] = total["threads"].get(kind, 0.0) + cpu
                total["reads"] += len(order)
                total["errors"] += result["errors"]
                # Warm-up reads, the sign-in and the measured reads are all in the ledger.
                total["audit"] += ledgers.audit() - audit_before
                threads = ", ".join(
                    f"{kind} {cpu / len(order) * 1e3:.2f}"
                    for kind, cpu in sorted(result["threads"].items(), key=lambda kv: -kv[1])
                    if cpu
                )
                print(
                    f"  round {round_number + 1} {name}: "
                    f"{result['cpu_s'] / len(order) * 1e3:.3f} ms CPU/read "
                    f"({result['system_s'] / len(order) * 1e3:.3f} system), "
                    f"{result['switches'] / len(order):.1f} context switches/read, "
                    f"{len(order) / result['wall_s']:.0f} reads/s in process; "
                    f"by thread (ms/read): {threads}",
                    flush=True,
                )
        if options.profile and (workdir / "profile.txt").exists():
            suffix = "" if backend == "sqlite" else f"-{backend}"
            header = (
                f"# read_cpu profile: {options.reads} reads by id in process ({backend}, "
                f"{options.clients} concurrent, encrypted), load average "
                f"{os.getloadavg()[0]:.1f}; cProfile on each thread's CPU clock\n"
            )
            (RESULTS_DIR / f"{options.name or NAME}-profile{suffix}.txt").write_text(
                header + (workdir / "profile.txt").read_text()
            )
        return [
            {
                "backend": backend,
                "code": name,
                "reads": t["reads"],
                "errors": t["errors"],
                "cpu_ms_per_read": round(t["cpu_s"] / t["reads"] * 1e3, 4),
                "system_ms_per_read": round(t["system_s"] / t["reads"] * 1e3, 4),
                "context_switches_per_read": round(t["switches"] / t["reads"], 2),
                "reads_per_second_in_process": round(t["reads"] / t["wall_s"], 1),
                "audit_entries": t["audit"],
                "thread_cpu_ms_per_read": {
                    kind: round(cpu / t["reads"] * 1e3, 4) for kind, cpu in t["threads"].items()
                },
            }
            for name, t in totals.items()
        ]


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(argv)
    if options.child:
        print(json.dumps(child(json.loads(Path(options.child).read_text()))))
        return
    started = now()
    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-readcpu-") as folder:
        for backend in options.backends:
            rows.extend(run_backend(backend, options, Path(folder)))
    table = Table(
        f"Server CPU per {'read by id' if options.operation == 'read' else 'search by identifier'}"
        f", in process (ASGI, no sockets), encrypted, {options.clients} concurrent",
        [
            "backend",
            "code",
            "reads",
            "CPU ms/read",
            "of which system",
            "context switches/read",
            "reads/s (in process)",
            "errors",
            "× baseline",
        ],
    )
    for row in rows:
        base = next(
            (r for r in rows if r["backend"] == row["backend"] and r["code"] == "baseline"), None
        )
        table.add(
            row["backend"],
            row["code"],
            row["reads"],
            row["cpu_ms_per_read"],
            row["system_ms_per_read"],
            row["context_switches_per_read"],
            row["reads_per_second_in_process"],
            row["errors"],
            ratio(row["cpu_ms_per_read"], base["cpu_ms_per_read"]) if base else "",
        )
    table.notes.append(
        f"load average (1 min) at the start {load_before[0]:.1f}, at the end "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; CPU is the process's clock "
        "(every thread) over the measured reads; × baseline: CPU ratio (lower is cheaper)"
    )
    table.notes.append(
        "not included: uvicorn's HTTP parsing and socket writes (the same for both copies)"
    )
    print(table.render())
    write_results(
        options.name or NAME,
        quick=options.quick,
        settings={k: v for k, v in vars(options).items() if k != "child"},
        results=rows,
        tables=[table],
        summary={f"{r['backend']} {r['code']}": r["cpu_ms_per_read"] for r in rows},
        started=started,
    )


if __name__ == "__main__":
    main()
