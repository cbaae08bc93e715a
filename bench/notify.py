"""Breach notices: prepared and sent per second to a local SMTP server, and the time to
the first notice sent after ``carevault notify send``, for an incident of 100,000
patients.

Setup (not timed as the job): 100,000 Patient records written through the gate in
batches (the vault's own writer: encrypted, indexed, one ledger entry each), and the
incident's scope document generated directly (confirmed tier, one to four data
categories each) rather than computed from an attacker's 100,000 reads. Then the real
command runs in its own process, exactly as an officer would start it::

    carevault notify send INC-BENCH --scope scope.json

reading every patient back through the gate as ``system:notify``, planning, DKIM-signing
(RSA-2048) and sending each notice to aiosmtpd on loopback (a sink in this process,
which counts the messages, their distinct Message-IDs and when they arrive).

Rows, all measured in the same run:
1. baseline: smtplib sending the same notices, prebuilt, over one connection (the SMTP
   path alone, the floor the job is measured against);
2. prepare: rendering a notice (four Jinja2 templates), its MIME message and DKIM
   signature, in this process (wall and CPU time);
3. the whole ``notify send`` process: notices sent per second, CPU seconds per notice;
4. time to the first notice at the SMTP server after the command starts.

    .venv/bin/python -m bench.notify                  # 100,000 patients
    .venv/bin/python -m bench.notify --quick          # 2,000 patients
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyotp
from aiosmtpd.controller import Controller

from bench.common import Table, now, ratio, write_results
from carevault.bootstrap import build_services
from carevault.config import Settings
from carevault.domain.categories import DataCategory
from carevault.domain.roles import Role
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.notify.channels import Outgoing
from carevault.notify.job import notice_key
from carevault.notify.mail import SmtpChannel
from carevault.notify.notice import render
from carevault.notify.reader import Reader
from carevault.notify.scope import parse_scope
from carevault.notify.service import channels_of, code_keys, sender_of
from carevault.sim.loader import SEED_CALLER
from carevault.vault.writer import Put

NAME = "notify"
INCIDENT = "INC-BENCH"
SENDER = "notices@clinics.example.hk"
CATEGORIES = [c.value for c in DataCategory if c is not DataCategory.CREDENTIALS]
SEED_BATCH = 500


@dataclass
class Sink:
    """aiosmtpd's handler: counts what arrives and when (wall clock, shared with the
    command's process)."""

    count: int = 0
    ids: set[str] = field(default_factory=set)
    first: float | None = None
    last: float | None = None
    kept: list[bytes] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        at = time.time()
        self.count += 1
        self.first = self.first if self.first is not None else at
        self.last = at
        data = bytes(envelope.content)
        head = data[: data.find(b"\r\n\r\n")]
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                self.ids.add(line.split(b":", 1)[1].strip().decode())
        if len(self.kept) < 20:
            self.kept.append(data)
        return "250 OK"

    def reset(self) -> None:
        self.count, self.ids, self.first, self.last, self.kept = 0, set(), None, None, []


def patient(number: int) -> dict[str, Any]:
    chinese = number % 3 != 0
    return {
        "resourceType": "Patient",
        "id": f"p{number}",
        "name": [{"family": "陳", "given": [f"大文{number}"]} if chinese
                 else {"family": "Chan", "given": [f"Alex{number}"]}],
        "birthDate": f"{1940 + number % 60}-0{1 + number % 9}-1{number % 10}",
        "telecom": [{"system": "email", "value": f"patient{number}@example.com"}],
        "address": [{"line": [f"Flat {number % 40}, {number % 200} Nathan Road"],
                     "district": "Yau Ma Tei"}],
        "communication": [{"language": {"coding": [{"code": "yue" if chinese else "en"}]},
                           "preferred": True}],
    }  # fmt: skip


def scope_document(patients: int, seed: int = 7) -> dict[str, Any]:
    chance = random.Random(seed)
    declared = datetime.now(UTC).isoformat()
    confirmed = [
        {"patient": f"p{index}", "categories": chance.sample(CATEGORIES, chance.randint(1, 4)),
         "evidence": [index]}
        for index in range(patients)
    ]  # fmt: skip
    return {
        "incident": {"id": INCIDENT, "title": "Bench", "declared_at": declared,
                     "compromised": {"accounts": ["staff:x"]}},
        "tiers": {"confirmed": confirmed},
    }  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def environment(home: Path, port: int, lanes: int, batch: int) -> dict[str, str]:
    return {
        "CAREVAULT_ENVIRONMENT": "benchmark",
        "CAREVAULT_HOME": str(home),
        "CAREVAULT_SMTP_PORT": str(port),
        "CAREVAULT_SMTP_FROM": SENDER,
        "CAREVAULT_NOTIFY_RATE": "1000000",
        "CAREVAULT_NOTIFY_BATCH": str(batch),
        "CAREVAULT_NOTIFY_LANES": str(lanes),
        "CAREVAULT_NOTIFY_LETTERS_DIR": str(home / "letters"),
        "CAREVAULT_CHECKPOINT_SECONDS": "0",
        "CAREVAULT_ARGON2_MEMORY_KIB": "8192",
        "CAREVAULT_ARGON2_TIME_COST": "1",
    }


#: The privacy officer whose fresh TOTP code starts the job (as ``notify send`` requires).
OFFICER = "bench.officer"


def seed(settings: Settings, patients: int) -> float:
    """Write the patients through the gate; patients per second."""
    services = build_services(settings, create_keys=True, migrate=True)
    try:
        _, secret = services.accounts.add(
            OFFICER, "Bench Officer", Role.PRIVACY_OFFICER, [], "correct horse battery staple"
        )
        (settings.home / "officer.totp").write_text(secret, encoding="utf-8")
        started = time.perf_counter()
        for start in range(0, patients, SEED_BATCH):
            services.gate.write(
                SEED_CALLER,
                [Put(RESOURCE_TYPES["Patient"], f"p{n}", patient(n))
                 for n in range(start, min(patients, start + SEED_BATCH))],
            )  # fmt: skip
            if start and start % 20_000 == 0:
                print(f"  seeded {start:,}", file=sys.stderr, flush=True)
        return patients / (time.perf_counter() - started)
    finally:
        services.close()


def prepare(settings: Settings, count: int) -> tuple[float, float, list[bytes]]:
    """Notices rendered, built and signed per second in this process (wall, CPU), and
    the messages (read through the gate first, as the job does; not timed)."""
    services = build_services(settings)
    try:
        scope = parse_scope(scope_document(count))
        email = channels_of(settings, services.now_us())["email"]
        assert isinstance(email, SmtpChannel)  # noqa: S101 - the bench's own wiring
        sender, codes = sender_of(settings), code_keys(settings)
        exposures = list(scope.exposures())
        found = Reader(services.gate, date.today).recipients([e.patient_id for e in exposures])
        wall, cpu = time.perf_counter(), time.process_time()
        messages = []
        for exposure in exposures:
            recipient = found[exposure.patient_id][0]
            key = notice_key(INCIDENT, exposure.patient_id)
            rendered = render(
                sender, scope.incident, exposure, recipient, codes.code_for(key, "email")
            )
            messages.append(email.render(Outgoing(key, recipient, rendered, INCIDENT)))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return len(messages) / wall, len(messages) / cpu, messages
    finally:
        services.close()


def baseline(port: int, messages: list[bytes], count: int) -> float:
    """Messages per second through smtplib alone (one connection)."""
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        started = time.perf_counter()
        for index in range(count):
            smtp.sendmail(SENDER, ["x@example.com"], messages[index % len(messages)])
        return count / (time.perf_counter() - started)


def send(home: Path, port: int, lanes: int, batch: int, scope_file: Path, sink: Sink,
         ) -> dict[str, Any]:  # fmt: skip
    """``carevault notify send`` in its own process, as an officer runs it."""
    sink.reset()
    code = pyotp.TOTP((home / "officer.totp").read_text(encoding="utf-8")).now()
    command = [str(Path(sys.executable).with_name("carevault")), "notify", "send", INCIDENT,
               "--scope", str(scope_file), "--officer", OFFICER, "--totp", code]  # fmt: skip
    env = {**os.environ, **environment(home, port, lanes, batch)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.time()
    finished = subprocess.run(command, env=env, capture_output=True, check=False)  # noqa: S603
    elapsed = time.time() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if finished.returncode != 0:
        raise RuntimeError(finished.stderr.decode()[-2000:])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    summary = finished.stdout.decode().strip().splitlines()[-1:]
    return {
        "lanes": lanes,
        "batch": batch,
        "received": sink.count,
        "distinct": len(sink.ids),
        "seconds": elapsed,
        "rate": sink.count / elapsed if elapsed else 0.0,
        "cpu_seconds": cpu,
        "cpu_ms_per_notice": cpu * 1000 / max(1, sink.count),
        "first_seconds": (sink.first - started) if sink.first else None,
        "summary": summary[0] if summary else "",
    }


def startup(home: Path, port: int) -> float:
    """Seconds for ``carevault --help`` to start and exit: the floor under the time to the
    first notice (the same interpreter and imports, no work)."""
    command = [str(Path(sys.executable).with_name("carevault")), "--help"]
    env = {**os.environ, **environment(home, port, 1, 1)}
    started = time.time()
    subprocess.run(command, env=env, capture_output=True, check=True)  # noqa: S603
    return time.time() - started


def dkim_checks(home: Path, messages: list[bytes]) -> tuple[int, int]:
    import dkim

    from carevault.notify.mail import dkim_key, dns_record

    record = dns_record(dkim_key(home / "keys" / "dkim.pem", create=False)).encode()
    passed = sum(bool(dkim.verify(m, dnsfunc=lambda name, timeout=5: record)) for m in messages)
    return passed, len(messages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--lanes", type=int, default=4)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    patients = 2_000 if args.quick else args.patients
    started = now()
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, loop=asyncio.new_event_loop())
    controller.start()
    loads: dict[str, str] = {"start": Path("/proc/loadavg").read_text().strip()}
    try:
        with tempfile.TemporaryDirectory(prefix="carevault-bench-notify-") as folder:
            home = Path(folder) / "home"
            os.environ.pop("CAREVAULT_DATABASE_URL", None)
            settings = Settings(**{  # type: ignore[arg-type]
                k.removeprefix("CAREVAULT_").lower(): v
                for k, v in environment(home, port, args.lanes, args.batch).items()
            })  # fmt: skip
            seeded = seed(settings, patients)
            scope_file = Path(folder) / "scope.json"
            scope_file.write_text(json.dumps(scope_document(patients)), encoding="utf-8")
            prepared_wall, prepared_cpu, messages = prepare(settings, min(2_000, patients))
            smtp_rate = baseline(port, messages, min(5_000, 3 * len(messages)))
            sink.reset()
            started_up = startup(home, port)
            loads["job"] = Path("/proc/loadavg").read_text().strip()
            job = send(home, port, args.lanes, args.batch, scope_file, sink)
            dkim_ok = dkim_checks(home, sink.kept)
            loads["end"] = Path("/proc/loadavg").read_text().strip()
    finally:
        controller.stop()
    figures = {
        "patients": patients, "seeded_per_second": seeded, "baseline": smtp_rate,
        "prepare_wall": prepared_wall, "prepare_cpu": prepared_cpu, "job": job,
        "startup_seconds": started_up, "dkim_verified": dkim_ok[0],
        "dkim_checked": dkim_ok[1], "loadavg": loads,
    }  # fmt: skip
    print(report(figures, args).render())
    write_results(NAME, quick=args.quick,
                  settings={"patients": patients, "lanes": args.lanes, "batch": args.batch},
                  results=[figures], tables=[report(figures, args)], summary=figures,
                  started=started)  # fmt: skip


def report(figures: dict[str, Any], args: argparse.Namespace) -> Table:
    job, base = figures["job"], figures["baseline"]
    table = Table(
        f"Breach notices to a local SMTP server (aiosmtpd), {figures['patients']:,} patients",
        ["measure", "per second", "ratio to baseline", "notes"],
    )
    table.add("baseline: smtplib, prebuilt notices, 1 connection", f"{base:,.0f}", "1.00",
              "the SMTP path alone")  # fmt: skip
    table.add("prepare: render + MIME + DKIM (wall)", f"{figures['prepare_wall']:,.0f}",
              f"{ratio(figures['prepare_wall'], base):.2f}",
              f"CPU: {figures['prepare_cpu']:,.0f}/s")  # fmt: skip
    table.add(f"`notify send`, whole process ({args.lanes} lanes)", f"{job['rate']:,.0f}",
              f"{ratio(job['rate'], base):.2f}",
              f"{job['received']:,} received ({job['distinct']:,} distinct) in "
              f"{job['seconds']:,.1f} s; "
              f"{job['cpu_ms_per_notice']:.2f} CPU ms a notice")  # fmt: skip
    first = job["first_seconds"]
    table.notes += [
        f"Time to the first notice at the SMTP server after `notify send` starts: "
        f"{first * 1000:,.0f} ms, {first / figures['startup_seconds']:.2f} x the "
        f"{figures['startup_seconds'] * 1000:,.0f} ms `carevault --help` takes in the same run "
        f"(process start and imports; then settings, database, scope file, the first "
        f"{2 * args.lanes} patients read through the gate)." if first is not None else
        "No notice arrived.",
        f"Setup: {figures['patients']:,} patients written through the gate at "
        f"{figures['seeded_per_second']:,.0f}/s; the scope document generated directly.",
        f"DKIM: {figures['dkim_verified']} of {figures['dkim_checked']} received notices "
        "verified by dkimpy. SQLite, RSA-2048, no rate limit, 2 of 3 notices in Chinese.",
        "Load average (1, 5, 15 min) at start / job / end: "
        + " / ".join(" ".join(figures["loadavg"][k].split()[:3]) for k in ("start", "job", "end"))
        + " on 2 CPUs, shared with other work; the ratio and CPU ms a notice are the "
        "figures that hold up under load.",
    ]  # fmt: skip
    return table


if __name__ == "__main__":
    main()
