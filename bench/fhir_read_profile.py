"""Where a read by id spends the server's CPU: the whole request, every thread.

One encrypted deployment is seeded (``--patients``) and served in a child process
that runs uvicorn in-process under cProfile in every thread (the event loop, Starlette's
worker threads, the ledger's group-commit thread, the detectors), timed by each
thread's own CPU clock, so waiting costs nothing and every microsecond of CPU is
counted where it was spent. The bench's load client reads ``GET /fhir/Patient/<id>``
at ``--clients`` concurrent clients for ``--seconds``; the server then writes the
merged profile (cumulative, per read) to ``bench/results/fhir_read_profile.txt``.

cProfile slows Python calls by a large factor; the shares matter, not the totals.

    .venv/bin/python -m bench.fhir_read_profile
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import httpx
from tests.support.server import free_port

from bench.detect import GENEROUS, READER_RAISES
from bench.load import run_load
from bench.server import password_token
from bench.serving import deployment, postgres_database, prepare

ROLE = "privacy_officer"
RESULTS = Path(__file__).parent / "results"


def serve_profiled(port: int, output: Path) -> None:
    """The server (settings from the environment) with a CPU-time cProfile per thread;
    on SIGINT uvicorn stops and the merged profile is written to ``output``."""
    import uvicorn

    from carevault.cli.server import uvicorn_options
    from carevault.config import load_settings
    from carevault.web.app import create_app

    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()

    def start_thread_profile(*_args: object) -> None:
        profile = cProfile.Profile(time.thread_time)
        with lock:
            profiles.append(profile)
        profile.enable()  # replaces this hook in this thread

    threading.setprofile(start_thread_profile)
    main = cProfile.Profile(time.thread_time)
    profiles.append(main)
    settings = load_settings()
    app = create_app(settings)
    main.enable()
    uvicorn.run(app, host="127.0.0.1", port=port, **uvicorn_options(settings))
    main.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profiles[0], stream=stream)
    for profile in profiles[1:]:
        try:
            stats.add(profile)
        except TypeError:  # a thread that never called anything
            continue
    stats.dump_stats(output.with_suffix(".prof"))
    stats.sort_stats("cumulative").print_stats(70)
    stats.sort_stats("tottime").print_stats(50)
    output.write_text(stream.getvalue())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fhir_read_profile")
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--backend", default="sqlite", help="sqlite or postgres")
    parser.add_argument("--keep", help="copy the raw pstats file here")
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.serve:
        serve_profiled(int(options.serve[0]), Path(options.serve[1]))
        return
    with ExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-profile-"))
        workdir = Path(folder)
        database = (
            stack.enter_context(postgres_database("profile"))
            if options.backend == "postgres"
            else None
        )
        target = deployment(
            "profile",
            workdir / "home",
            database,
            dek_cache_seconds=3600,
            release_budget=GENEROUS,
            detect_responses=READER_RAISES,
        )
        seeded = prepare(target, roles=[ROLE], patients=options.patients)
        port = free_port()
        raw = workdir / "profile.txt"
        log = (workdir / "server.log").open("wb")
        process = subprocess.Popen(  # noqa: S603 - this interpreter, this module
            [sys.executable, "-m", "bench.fhir_read_profile", "--serve", str(port), str(raw)],
            env=target.server_environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            token = password_token(url, seeded.login(ROLE))
            paths = [f"/fhir/Patient/{p.resource_id}" for p in seeded.patients]
            check = httpx.get(
                url + paths[0], headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            if check.status_code != 200:
                raise RuntimeError(f"read refused: {check.status_code} {check.text[:300]}")
            run_load("127.0.0.1", port, paths, token=token, clients=8, seconds=60, limit=len(paths))
            result = run_load(
                "127.0.0.1",
                port,
                paths,
                token=token,
                clients=options.clients,
                seconds=options.seconds,
            )
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=120)
        reads = len(paths) + result.requests
        header = (
            f"# fhir_read_profile: {reads} reads by id ({options.clients} clients, "
            f"{options.patients} patients, encrypted, {options.backend}); load average "
            f"{os.getloadavg()[0]:.1f}; cProfile CPU time of every server thread\n"
        )
        suffix = "" if options.backend == "sqlite" else f"-{options.backend}"
        (RESULTS / f"fhir_read_profile{suffix}.txt").write_text(header + raw.read_text())
        if options.keep:
            Path(options.keep).write_bytes(raw.with_suffix(".prof").read_bytes())
        print(header, result.statuses, result.errors)


if __name__ == "__main__":
    main()
