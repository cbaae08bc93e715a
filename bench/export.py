"""Bulk Data ``$export`` of a seeded clinic group: time to manifest, resources/s, and
every patient present once in the ledger.

The group is seeded with ``carevault seed``'s path (``seed_clinic_group``) into a fresh
SQLite data directory; an integration client granted ``system/*.read`` at every clinic
kicks a Patient-level export off through the HTTP API (in process), a privacy officer
approves it, and the export worker runs it in this process. "Time to manifest" runs
from the approval to the status URL answering 200 with the manifest. Afterwards every
file is downloaded and decrypted, and the ledger's ``fhir:resource:export`` entries of
the job are checked against the Patient lines: each patient exactly once in both.

    python -m bench.export --patients 20000       # the issue's figure (seeding is slow)
    python -m bench.export --quick                # 50 patients, a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench.common import Table, now, write_results
from carevault.bootstrap import Services, build_services
from carevault.config import Settings
from carevault.containment.service import Officer
from carevault.db import read_transaction
from carevault.domain.roles import Role
from carevault.export.worker import ExportWorker
from carevault.ledger.events import AuditEvent, Tag
from carevault.sim.loader import seed_clinic_group
from carevault.vault.tables import resource_head

NAME = "export"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m bench.{NAME}", description=__doc__)
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500, help="Patients per export batch.")
    parser.add_argument("--quick", action="store_true", help="50 patients, results *-quick.*")
    return parser.parse_args(argv)


def _load() -> str:
    return Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"


def _officer(services: Services) -> Officer:
    import pyotp

    account, secret = services.accounts.add(
        "bench-officer", "Bench officer", Role.PRIVACY_OFFICER, [], "correct horse battery staple"
    )
    return Officer(account.username, pyotp.TOTP(secret).now(), "bench")


def run(patients: int, batch: int, home: Path) -> dict[str, Any]:
    from starlette.testclient import TestClient

    from carevault.web.app import create_app

    settings = Settings(
        home=home,
        environment="test",
        checkpoint_seconds=0,
        export_batch_patients=batch,
        export_worker=False,
        detect=False,
    )
    services = build_services(settings, create_keys=True, migrate=True)
    try:
        load_before_seed = _load()
        seeding = time.perf_counter()
        seed_clinic_group(services, patients=patients, seed=7, staff_accounts=False)
        seed_seconds = time.perf_counter() - seeding
        with read_transaction(services.engine) as connection:
            clinics = sorted(
                connection.execute(
                    select(resource_head.c.resource_id).where(
                        resource_head.c.resource_type == "Organization"
                    )
                ).scalars()
            )
        _, secret = services.admin.add_client(
            "admin:bench",
            "bench-exporter",
            "Bench exporter",
            confidential=True,
            scopes="system/*.read",
            clinic_ids=clinics,
        )
        assert secret and services.exports is not None
        exports = services.exports
        with TestClient(create_app(settings, services)) as web:
            token = web.post(
                "/auth/token",
                data={"grant_type": "client_credentials", "scope": "system/*.read"},
                auth=("bench-exporter", secret),
            ).json()["access_token"]
            auth = {"authorization": f"Bearer {token}"}
            kicked = web.get("/fhir/Patient/$export", headers={**auth, "prefer": "respond-async"})
            assert kicked.status_code == 202, kicked.text
            status_url = kicked.headers["content-location"].split("testserver", 1)[1]
            job_id = status_url.rsplit("/", 1)[1]
            exports.approve(_officer(services), job_id)
            load_before_export = _load()
            started = time.perf_counter()
            cpu_started = time.process_time()
            ExportWorker(exports, "bench").run_once()
            answer = web.get(status_url, headers=auth)
            to_manifest = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
            load_after_export = _load()
            assert answer.status_code == 200, answer.text
            manifest = answer.json()
            print(
                f"manifest after {to_manifest:.1f} s (CPU {cpu:.1f} s), load {load_after_export}",
                flush=True,
            )
            # A long export outlives the access token: a fresh one, as a client would get.
            token = web.post(
                "/auth/token",
                data={"grant_type": "client_credentials", "scope": "system/*.read"},
                auth=("bench-exporter", secret),
            ).json()["access_token"]
            auth = {"authorization": f"Bearer {token}"}
            downloading = time.perf_counter()
            ids: list[str] = []
            resources = 0
            for item in manifest["output"]:
                got = web.get(item["url"].split("testserver", 1)[1], headers=auth)
                assert got.status_code == 200, got.text
                lines = got.content.splitlines()
                resources += len(lines)
                if item["type"] == "Patient":
                    ids += [json.loads(line)["id"] for line in lines]
            download_seconds = time.perf_counter() - downloading
        recorded = [
            AuditEvent.from_canonical(data)
            for _, data in services.audit_ledger.store.entries()
            if b'"fhir:resource:export"' in data
        ]
        mine = [e for e in recorded if e.tag is Tag.FHIR_EXPORT and e.detail.get("job") == job_id]
        ledger_ids = [e.resource_id for e in mine]
        job = exports.job(job_id)
        return {
            "patients_seeded": patients,
            "seed_seconds": round(seed_seconds, 1),
            "patients_in_reach": job.patients_total,
            "patients_exported": len(ids),
            "patients_once_in_files": len(ids) == len(set(ids)) == job.patients_total,
            "patients_once_in_ledger": len(ledger_ids) == len(set(ledger_ids))
            and sorted(i or "" for i in ledger_ids) == sorted(ids),
            "ledger_entries": len(mine),
            "resources": resources,
            "files": len(manifest["output"]),
            "seconds_to_manifest": round(to_manifest, 2),
            "resources_per_second": round(resources / to_manifest, 1),
            "cpu_seconds": round(cpu, 2),
            "download_seconds": round(download_seconds, 2),
            "load_before_seed": load_before_seed,
            "load_before_export": load_before_export,
            "load_after_export": load_after_export,
        }
    finally:
        services.close()


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    patients = 50 if args.quick else args.patients
    started = now()
    with tempfile.TemporaryDirectory(prefix="cv-export-") as scratch:
        os.chmod(scratch, 0o700)
        result = run(patients, args.batch, Path(scratch) / "home")
    table = Table(
        "Bulk Data $export, SQLite, encrypted, one process",
        [
            "patients",
            "resources",
            "files",
            "s to manifest",
            "resources/s",
            "CPU s",
            "once in files",
            "once in ledger",
        ],
    )
    table.add(
        result["patients_exported"],
        result["resources"],
        result["files"],
        result["seconds_to_manifest"],
        result["resources_per_second"],
        result["cpu_seconds"],
        "yes" if result["patients_once_in_files"] else "NO",
        "yes" if result["patients_once_in_ledger"] else "NO",
    )
    table.notes.append(
        f"seeded {patients} patients in {result['seed_seconds']} s (seed_clinic_group); "
        f"batch {args.batch} patients"
    )
    table.notes.append(
        f"load average (1 min): {result['load_before_export']} before the export, "
        f"{result['load_after_export']} after, on {os.cpu_count()} CPUs"
    )
    print(table.render())
    write_results(
        NAME,
        quick=args.quick,
        settings={"patients": patients, "batch": args.batch, "backend": "sqlite"},
        results=[result],
        tables=[table],
        summary=result,
        started=started,
    )


if __name__ == "__main__":
    main()
