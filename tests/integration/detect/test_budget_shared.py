"""The release budget under concurrent reads through two server instances (two engines,
two ledger writers, two caches, as two processes have): never one patient past it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from carevault.bootstrap import build_services
from carevault.config import Settings
from carevault.db import read_transaction
from carevault.detect.budget import ReleaseRefused
from carevault.detect.tables import detect_release
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate.core import Caller
from carevault.ledger.events import AuditEvent, Outcome, Tag
from tests.integration.detect.conftest import PATIENTS, opened_clinic

BUDGET = 30  # front_desk=30/100 (detect_settings)


@pytest.mark.parametrize("queued", [False, True], ids=["read", "read_later"])
def test_concurrent_reads_through_two_servers_stop_exactly_at_the_budget(
    detect_settings: Settings, queued: bool
) -> None:
    bodies = (
        {
            "resourceType": "Patient",
            "name": [{"family": f"Lam{n}", "given": ["Siu Ming"]}],
            "managingOrganization": {"reference": "Organization/clinic-a"},
        }
        for n in range(PATIENTS)
    )
    with opened_clinic(detect_settings, bodies) as clinic:
        second = build_services(detect_settings)
        try:
            who = clinic.services.access.authenticate(clinic.desk.token)
            caller = Caller(
                principal=who.actor.principal,
                actor=who.actor,
                session_id=who.session_id,
                client_id=who.client_id,
            )
            servers = (clinic.services, second)
            patient_type = RESOURCE_TYPES["Patient"]

            def read(numbered: tuple[int, str]) -> int:
                n, patient = numbered
                gate = servers[n % 2].gate
                try:
                    if queued:  # as the event loop reads: the entry queued, then awaited
                        gate.read_later(caller, patient_type, patient).result(timeout=60)
                    else:
                        gate.read(caller, patient_type, patient)
                except ReleaseRefused:
                    return 429
                return 200

            with ThreadPoolExecutor(max_workers=12) as pool:
                statuses = list(pool.map(read, enumerate(clinic.patients)))
            # Every read asks for a patient not given before: the first BUDGET of them, in
            # whatever order the two servers' commits came, are given; the rest refused.
            assert statuses.count(200) == BUDGET
            assert statuses.count(429) == PATIENTS - BUDGET
            with read_transaction(second.engine) as connection:
                recorded = connection.execute(
                    select(func.count()).where(detect_release.c.account == caller.principal)
                ).scalar_one()
            assert recorded == BUDGET
            # Each outcome is in the ledger: given ones as successes, refusals as denials.
            events = [
                AuditEvent.from_canonical(data) for _, data in second.audit_ledger.store.entries()
            ]
            outcomes = [
                event.outcome
                for event in events
                if event.tag is Tag.FHIR_READ and event.principal == caller.principal
            ]
            assert outcomes.count(Outcome.SUCCESS) == BUDGET
            assert outcomes.count(Outcome.DENIED) == PATIENTS - BUDGET
            # A patient already given costs nothing more, on either server.
            given = [p for p, s in zip(clinic.patients, statuses, strict=True) if s == 200]
            for server in servers:
                server.gate.read(caller, patient_type, given[0])
        finally:
            second.close()
