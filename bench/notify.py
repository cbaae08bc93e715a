"""Breach notices: prepared and sent per second to a local SMTP server, and the time to
the first notice sent, for an incident of 100,000 patients.

The scope (100,000 patients, confirmed tier, one to four data categories each) and the
patients' contact details are generated directly, not seeded through the gate: writing
and then reading 100,000 patients through the gate would take most of the run (what a
gate read costs is ``bench.reads``'s subject; here a sample of 300 patients written and
read through the gate gives the per-patient cost of the notify principal's reads, so
the whole can be added up). The job's reader is swapped for one that builds the same
``Recipient`` the gate reading would; everything else is the real job: SQLite notice
table, the ledger, DKIM (RSA-2048), one SMTP connection to aiosmtpd in its own process.

Rows:
1. baseline: smtplib sending one prebuilt message again and again over one connection
   (the SMTP path alone, the floor the job is measured against);
2. prepare: rendering a notice (four Jinja2 templates), the MIME message and its DKIM
   signature, in this process;
3. send job: the whole job, from ``run`` to the last notice, at no rate limit;
4. time to the first notice sent after the job starts;
5. gate reads: reading a patient's contact details through the gate (ledger entry each).

    .venv/bin/python -m bench.notify                  # 100,000 patients, a few minutes
    .venv/bin/python -m bench.notify --seconds 120    # stop the job after 2 minutes
    .venv/bin/python -m bench.notify --quick          # 2,000 patients
"""

from __future__ import annotations

import argparse
import random
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bench.common import Table, now, ratio, write_results
from carevault.bootstrap import build_services
from carevault.config import Settings
from carevault.domain.categories import DataCategory
from carevault.notify.channels import Outgoing
from carevault.notify.contacts import Recipient
from carevault.notify.job import Reader, notice_key
from carevault.notify.mail import SmtpChannel
from carevault.notify.notice import render
from carevault.notify.scope import parse_scope
from carevault.notify.service import channels_of, send_job, sender_of

NAME = "notify"
CATEGORIES = [c.value for c in DataCategory if c is not DataCategory.CREDENTIALS]


class GeneratedReader(Reader):
    """Contact details generated from the patient id, as the gate reading would give them."""

    def recipients(self, patient_ids: Sequence[str]) -> dict[str, tuple[Recipient, str | None]]:
        found = {}
        for patient_id in patient_ids:
            number = int(patient_id[1:])
            chinese = number % 3 != 0
            found[patient_id] = (
                Recipient(
                    patient_id=patient_id,
                    language="zh" if chinese else "en",
                    patient_name=f"陳大文{number}" if chinese else f"Alex Chan {number}",
                    addressee=f"陳大文{number}" if chinese else f"Alex Chan {number}",
                    guardian=False,
                    minor=False,
                    deceased=False,
                    email=f"patient{number}@example.com",
                    mobile=None,
                    address=("Flat 1, 2 Nathan Road", "Yau Ma Tei"),
                    region=None,
                ),
                None,
            )
        return found


def scope_document(patients: int, seed: int = 7) -> dict[str, Any]:
    chance = random.Random(seed)
    declared = datetime.now(UTC).isoformat()
    confirmed = [
        {"patient": f"p{index}", "categories": chance.sample(CATEGORIES, chance.randint(1, 4)),
         "evidence": [index]}
        for index in range(patients)
    ]  # fmt: skip
    return {
        "incident": {"id": "INC-BENCH", "title": "Bench", "declared_at": declared,
                     "compromised": {"accounts": ["staff:x"]}},
        "tiers": {"confirmed": confirmed},
    }  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def smtp_server(port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
         "-c", "aiosmtpd.handlers.Sink"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("aiosmtpd did not start")


def baseline(port: int, message: bytes, count: int) -> float:
    """Messages per second through smtplib alone (one connection)."""
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        started = time.perf_counter()
        for _ in range(count):
            smtp.sendmail("notices@clinics.example.hk", ["x@example.com"], message)
        return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=600.0, help="Stop the job after this.")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    patients = 2_000 if args.quick else args.patients
    started = now()
    port = free_port()
    server = smtp_server(port)
    try:
        with tempfile.TemporaryDirectory(prefix="carevault-bench-notify-") as folder:
            figures = run(Path(folder), port, patients, args.seconds)
    finally:
        server.terminate()
        server.wait(timeout=10)
    table = Table(
        f"Breach notices to a local SMTP server (aiosmtpd), {patients:,} patients",
        ["measure", "per second", "ratio to baseline", "notes"],
    )
    table.add("baseline: smtplib, prebuilt message", f"{figures['baseline']:,.0f}", "1.00",
              "the SMTP path alone")  # fmt: skip
    table.add("prepare: render + MIME + DKIM", f"{figures['prepare']:,.0f}",
              f"{ratio(figures['prepare'], figures['baseline']):.2f}", "in-process")  # fmt: skip
    table.add("send job, end to end", f"{figures['job_rate']:,.0f}",
              f"{ratio(figures['job_rate'], figures['baseline']):.2f}",
              f"{figures['job_sent']:,} sent in {figures['job_seconds']:,.1f} s"
              + ("" if figures["job_complete"] else " (stopped at the time limit)"))  # fmt: skip
    whole = 100_000 / figures["gate_rate"]
    table.add("gate reads of contacts (notify principal)", f"{figures['gate_rate']:,.0f}", "",
              f"300 patients; 100,000 would take {whole:,.0f} s")  # fmt: skip
    first_ms = figures["first_seconds"] * 1000
    table.notes += [
        f"Time to the first notice sent after the job starts: {first_ms:,.0f} ms.",
        "Patients' contacts and the scope generated directly (see the module's docstring); "
        "the gate's reads are measured apart on 300 patients.",
        "SQLite, RSA-2048 DKIM, one SMTP connection, no rate limit (CAREVAULT_NOTIFY_RATE "
        "set high); 2 of 3 notices in Chinese.",
    ]  # fmt: skip
    print(table.render())
    write_results(NAME, quick=args.quick, settings={"patients": patients, "seconds": args.seconds},
                  results=[figures], tables=[table], summary=figures, started=started)  # fmt: skip


def run(folder: Path, port: int, patients: int, seconds: float) -> dict[str, Any]:
    settings = Settings(
        environment="benchmark", home=folder / "home", smtp_port=port,
        smtp_from="notices@clinics.example.hk", notify_rate=1e6, notify_batch=50,
        notify_letters_dir=folder / "letters", checkpoint_seconds=0,
        argon2_memory_kib=8192, argon2_time_cost=1,
    )  # fmt: skip
    services = build_services(settings, create_keys=True, migrate=True)
    try:
        scope = parse_scope(scope_document(patients))
        sender = sender_of(settings)
        channels = channels_of(settings, services.now_us())
        email = channels["email"]
        assert isinstance(email, SmtpChannel)
        reader = GeneratedReader(services.gate, lambda: date.today())
        exposures = list(scope.exposures())
        sample = exposures[: min(2000, len(exposures))]
        found = reader.recipients([e.patient_id for e in sample])
        t0 = time.perf_counter()
        messages = []
        for exposure in sample:
            recipient = found[exposure.patient_id][0]
            key = notice_key("INC-BENCH", exposure.patient_id)
            rendered = render(sender, scope.incident, exposure, recipient, "K7MX-3HPA-RT9W")
            messages.append(email.render(Outgoing(key, recipient, rendered, "INC-BENCH")))
        prepare = len(sample) / (time.perf_counter() - t0)
        smtp_rate = baseline(port, messages[0], min(3000, 10 * len(sample)))

        job = send_job(services, channels)
        job.reader = reader
        timer = threading.Timer(seconds, job.stop.set)
        timer.start()
        t0 = time.perf_counter()
        progress = job.run(scope, ("confirmed",))
        elapsed = time.perf_counter() - t0
        timer.cancel()
        first = (progress.first_sent_at or t0) - t0
        gate_rate = gate_reads(services)
    finally:
        services.close()
    return {
        "patients": patients,
        "baseline": smtp_rate,
        "prepare": prepare,
        "job_sent": progress.sent,
        "job_seconds": elapsed,
        "job_rate": progress.sent / elapsed if elapsed else 0.0,
        "job_complete": progress.sent == patients,
        "first_seconds": first,
        "gate_rate": gate_rate,
    }


def gate_reads(services: Any) -> float:
    from carevault.fhir.registry import RESOURCE_TYPES
    from carevault.sim.loader import SEED_CALLER
    from carevault.vault.writer import Put

    ids = [f"g{index}" for index in range(300)]
    operations = [
        Put(RESOURCE_TYPES["Patient"], pid, {
            "resourceType": "Patient", "id": pid, "name": [{"family": "Chan", "given": ["Tai"]}],
            "telecom": [{"system": "email", "value": f"{pid}@example.com"}],
            "communication": [{"language": {"coding": [{"code": "yue"}]}}]})
        for pid in ids
    ]  # fmt: skip
    for start in range(0, len(operations), 50):
        services.gate.write(SEED_CALLER, operations[start : start + 50])
    reader = Reader(services.gate, lambda: date.today())
    t0 = time.perf_counter()
    for start in range(0, len(ids), 50):
        reader.recipients(ids[start : start + 50])
    return len(ids) / (time.perf_counter() - t0)


if __name__ == "__main__":
    main()
