"""Adversary round 69, the insider with the database: the whole database (or its ledger
tables) put back from an older copy while the server runs, on SQLite and PostgreSQL.

Found: ``audit verify`` named the rollback (the witness remembers a larger tree), but
the server did not notice. At its next checkpoint the witness refused to cosign (409) and
the server logged one line, kept the unwitnessed checkpoint and served on: no ledger
entry, no alert. Now each refusal is an ``audit:witness:refused`` entry in the audit
ledger, and one that says the ledger diverged (409, 422) raises a critical alert
(``stored-data-altered``) for an officer to judge."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from sqlalchemy import delete, insert, select

from carevault.bootstrap import Services
from carevault.db import write_transaction
from carevault.ledger.schema import audit_tables
from carevault.ledger.unwrap import unwrap_tables
from tests.integration.ledger.test_tamper import activity
from tests.support.client import FhirTestClient

pytestmark = pytest.mark.postgres

TABLES = (audit_tables.entry, audit_tables.tile, audit_tables.head, audit_tables.checkpoint)
REFUSED = "audit:witness:refused"
DETECTOR = "stored-data-altered"


def _copy(services: Services) -> dict[Any, list[dict[str, Any]]]:
    with services.engine.connect() as connection:
        return {
            table: [row._asdict() for row in connection.execute(select(table)).all()]
            for table in TABLES
        }


def _put_back(services: Services, saved: dict[Any, list[dict[str, Any]]]) -> None:
    with write_transaction(services.engine) as connection:
        for table in TABLES:
            connection.execute(delete(table))
            if saved[table]:
                connection.execute(insert(table), saved[table])


def _entries(services: Services, tag: str) -> list[dict[str, Any]]:
    found = (json.loads(data) for _, data in services.audit_ledger.store.entries())
    return [entry for entry in found if entry["tag"] == tag]


def _recorded(services: Services, tag: str) -> list[dict[str, Any]]:
    """The entries of ``tag``, once there is one (the refusal is submitted, not waited
    for, by whoever made the checkpoint): within five seconds, or the test fails."""
    deadline = time.monotonic() + 5
    while not (found := _entries(services, tag)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return found


def test_a_rolled_back_ledger_is_told_at_the_next_checkpoint(
    api: FhirTestClient, services: Services
) -> None:
    activity(api, 3)
    services.audit_ledger.checkpoints.make("test")
    saved = _copy(services)
    activity(api, 2)
    cosigned = services.audit_ledger.checkpoints.make("test")
    assert cosigned.witnessed_by != ()
    _put_back(services, saved)  # the insider's restore of an older copy
    activity(api, 1)
    made = services.audit_ledger.checkpoints.make("test")
    assert made.witnessed_by == ()  # the witness refused, as before
    (refusal,) = _recorded(services, REFUSED)
    assert refusal["outcome"] == "failed"
    assert refusal["detail"]["diverged"] is True and refusal["detail"]["ledger"] == "audit"
    assert refusal["detail"]["status"] == 409
    assert "rolled back or rewritten" in refusal["reason"]
    detection = services.detection
    assert detection is not None
    detection.engine.catch_up()
    altered = [alert for alert in detection.alerts.list() if alert.detector == DETECTOR]
    assert len(altered) == 1, altered
    assert altered[0].severity == "critical"
    assert "rolled back" in altered[0].explanation
    # ``audit verify`` names it too (as before).
    report = services.audit_ledger.verify()
    assert not report.ok
    assert any("fork" in problem or "rolled back" in problem for problem in report.problems)


def test_a_ledger_that_grew_is_cosigned_and_nothing_is_recorded(
    api: FhirTestClient, services: Services
) -> None:
    """Guard: growth is cosigned as ever, and leaves no refusal nor alert."""
    activity(api, 2)
    services.audit_ledger.checkpoints.make("test")
    activity(api, 1)
    made = services.audit_ledger.checkpoints.make("test")
    assert made.witnessed_by != ()
    activity(api, 1)  # a commit after the checkpoint: a refusal would be in by now
    assert _entries(services, REFUSED) == []
    detection = services.detection
    assert detection is not None
    detection.engine.catch_up()
    assert [alert for alert in detection.alerts.list() if alert.detector == DETECTOR] == []


def test_an_unwrap_deleted_from_the_key_stores_log_is_named(
    api: FhirTestClient, services: Services
) -> None:
    """Guard: the unwrap log (the key service's own ledger, in the key store's database)
    edited by the insider to hide an unwrap is caught by ``audit verify`` as the audit
    ledger is."""
    activity(api, 2)
    assert services.keys is not None
    services.keys.forget_cached()
    api.get("/fhir/Patient?family=tamper0")  # an unwrap, logged
    services.unwrap_ledger.checkpoints.make("test")
    assert services.unwrap_ledger.verify().ok
    entry = unwrap_tables.entry
    with write_transaction(services.unwrap_ledger.store.engine) as connection:
        last = connection.execute(select(entry.c.seq).order_by(entry.c.seq.desc())).first()
        assert last is not None
        connection.execute(delete(entry).where(entry.c.seq == last.seq))
    report = services.unwrap_ledger.verify()
    assert not report.ok
    assert any("head says" in problem for problem in report.problems), report.problems
