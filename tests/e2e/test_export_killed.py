"""SIGKILL the server in the middle of a Bulk Data export, start it again, let the export
finish: every patient in reach is in the files once and in the ledger once, and the
ledger verifies. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from carevault.bootstrap import build_services
from carevault.config import Settings
from carevault.export.model import Status
from carevault.ledger.events import AuditEvent, Tag
from tests.integration.access.browser import basic, bearer
from tests.support.auth import fresh_code, login_for, token_for
from tests.support.server import environment, run_cli, running_server

pytestmark = pytest.mark.e2e

PATIENTS = 40


def _wait(condition: object, what: str, seconds: float = 300, every: float = 0.02) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(every)


def test_an_export_killed_mid_run_finishes_with_each_patient_once(
    settings: Settings, tmp_path: Path
) -> None:
    env = environment(
        settings.home,
        settings.database_url,
        {
            "CAREVAULT_DIRECT_GRANT": "true",
            "CAREVAULT_ARGON2_MEMORY_KIB": "8192",
            "CAREVAULT_ARGON2_TIME_COST": "1",
            "CAREVAULT_EXPORT_BATCH_PATIENTS": "1",
            "CAREVAULT_EXPORT_LEASE_SECONDS": "1",
            "CAREVAULT_EXPORT_POLL_SECONDS": "0.2",
            "CAREVAULT_DETECT_RESPONSES": "high=raise,medium=raise",
        },
    )
    seeded = run_cli(env, "seed", "--patients", str(PATIENTS))
    assert seeded.returncode == 0, seeded.stderr
    services = build_services(settings)
    try:
        clinics = sorted(services.access.known_clinics())
        _, secret = services.admin.add_client(
            "admin:test",
            "exporter",
            "Exporter",
            confidential=True,
            scopes="system/*.read",
            clinic_ids=clinics,
        )
        assert secret
        exports = services.exports
        assert exports is not None
        # The client reaches every clinic: its Patient export is the whole group's, which
        # two officers approve, each from their own signed-in session.
        officers = [login_for(settings.home, "privacy_officer", index) for index in (0, 1)]

        with running_server(env, tmp_path) as server:
            form = {"grant_type": "client_credentials", "scope": "system/*.read"}
            token = httpx.post(
                f"{server.url}/auth/token", data=form, headers=basic("exporter", secret)
            ).json()["access_token"]
            kicked = httpx.get(
                f"{server.fhir}/Patient/$export",
                headers={**bearer(token), "prefer": "respond-async"},
            )
            assert kicked.status_code == 202, kicked.text
            job_id = kicked.headers["content-location"].rsplit("/", 1)[1]
            for officer in officers:
                officer_token = token_for(server.url, officer)  # signing in takes a code
                approved = httpx.post(
                    f"{server.url}/admin/exports/{job_id}/approve",
                    json={"totp": fresh_code(officer)},
                    headers=bearer(officer_token),
                )
                assert approved.status_code == 200, approved.text
            _wait(lambda: exports.job(job_id).batches_done >= 3, "a few batches")
            server.kill()
        killed_at = exports.job(job_id)
        assert killed_at.status is Status.RUNNING, "the export finished before the kill"

        # One client for the polls and the downloads (one file per batch and type: hundreds),
        # as a bulk client would: a new client per request cost this process about 5 s of
        # CPU (each makes its own TLS context) and the server a connection each.
        with (
            running_server(env, tmp_path) as server,
            httpx.Client(headers=bearer(token), timeout=30) as client,
        ):
            status_url = f"{server.fhir}/$export-status/{job_id}"
            # Asked over HTTP as a client would, a few times a second: every request costs
            # the server CPU that the export itself needs.
            _wait(
                lambda: client.get(status_url).status_code == 200,
                "the export to finish after the restart",
                every=0.25,
            )
            manifest = client.get(status_url).json()
            ids: list[str] = []
            for item in manifest["output"]:
                response = client.get(item["url"])
                assert response.status_code == 200
                if item["type"] == "Patient":
                    ids += [json.loads(line)["id"] for line in response.content.splitlines()]
        job = exports.job(job_id)
        assert job.batches_done > killed_at.batches_done
        assert len(ids) == len(set(ids)) == job.patients_total > 0
        recorded = [
            AuditEvent.from_canonical(data)
            for _, data in services.audit_ledger.store.entries()
            if b'"fhir:resource:export"' in data
        ]
        mine = [e for e in recorded if e.tag is Tag.FHIR_EXPORT and e.detail["job"] == job_id]
        assert sorted(e.resource_id or "" for e in mine) == sorted(ids)
        assert len({e.patient_pseudonym for e in mine}) == len(mine)
        report = services.audit_ledger.verify()
        assert report.ok, report
    finally:
        services.close()
