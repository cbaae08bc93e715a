"""Kept scope runs: each computed scope is kept whole, numbered per incident, with who
computed it, the ledger sizes it read, its digest and the ledger entry that records it;
a kept run is given back exactly, and refused once its text or its record disagree."""

from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import select, update

from carevault.bootstrap import Services
from carevault.db import read_transaction, write_transaction
from carevault.incidents import (
    Actor,
    ScopeRunMissing,
    ScopeRunTampered,
    compute_scope,
    declare_case,
    incidents_for,
    kept_scope,
    scope_document,
)
from carevault.incidents.runs import canonical, sealed_field
from carevault.incidents.tables import incident_scope_run
from carevault.incidents.words import PREFIX
from carevault.ledger.events import AuditEvent, Outcome, Tag
from tests.support.ledgers import JAN_1, record_reads
from tests.support.staff import add_account

pytestmark = pytest.mark.postgres

OFFICER = Actor("staff:officer1", "10.1.2.3")


def _reads(services: Services, count: int, first: int = 0) -> None:
    """staff:thief reads ``count`` patients on 2026-01-01, a minute apart."""
    record_reads(services, "staff:thief", range(first, first + count), source_address="203.0.113.9")


def _incident(services: Services) -> int:
    add_account(services, "thief")
    case = {"title": "Phished", "accounts": ["thief"], "since": "2026-01-01",
            "until": "2026-01-02T00:00:00+00:00"}  # fmt: skip
    return declare_case(services, OFFICER, case).incident_id


def _entry(services: Services, position: int) -> dict[str, object]:
    data = services.audit_ledger.store.entry(position)
    assert data is not None
    found: dict[str, object] = json.loads(data)
    return found


def test_each_scope_is_kept_whole_numbered_and_recorded(services: Services) -> None:
    _reads(services, 3)
    incident = _incident(services)
    first = compute_scope(services, incident, actor=OFFICER)
    _reads(services, 2, first=3)
    before_second = services.audit_ledger.store.head()[0]
    second = compute_scope(services, incident, actor=Actor("staff:officer2"))
    assert (first.number, second.number) == (1, 2)
    assert first.document is not None and second.document is not None
    assert len(first.document["tiers"]["confirmed"]) == 3
    assert len(second.document["tiers"]["confirmed"]) == 5
    assert second.document["incident"]["changes"]["confirmed"]["added"] == ["ps3", "ps4"]
    # The second run read everything the ledger held when it started, its own entry after.
    assert second.covers is not None and second.covers.audit == before_second
    assert second.ledger_seq is not None and second.ledger_seq >= before_second
    for run in (first, second):
        assert run.sha256 == hashlib.sha256(canonical(run.document or {})).hexdigest()
        assert run.ledger_seq is not None and run.covers is not None
        entry = _entry(services, run.ledger_seq)
        assert entry["tag"] == Tag.INCIDENT_SCOPED.value
        assert entry["principal"] == run.actor
        assert entry["detail"] == {
            "incident": incident,
            "run": run.number,
            "sha256": run.sha256,
            "covers": {"audit": run.covers.audit, "unwrap": run.covers.unwrap},
            "patients": {
                "confirmed": {1: 3, 2: 5}[run.number],
                "decrypted": 0,
                "at_rest_only": 0,
                "potentially": 0,
            },  # fmt: skip
        }
    # Given back exactly as computed: the latest, and any earlier one by its number.
    assert kept_scope(services, incident).document == second.document
    assert kept_scope(services, str(incident), 1).document == first.document
    listed = incidents_for(services).scope_runs(incident)
    assert [(run.number, run.actor, run.sha256) for run in listed] == [
        (2, "staff:officer2", second.sha256),
        (1, "staff:officer1", first.sha256),
    ]
    assert listed[0].as_json()["covers"] == {"audit": before_second, "unwrap": 0}


def test_scope_document_keeps_its_shape_and_is_kept_as_the_next_run(services: Services) -> None:
    _reads(services, 3)
    incident = _incident(services)
    document = scope_document(services, incident)
    assert set(document) == {"incident", "tiers", "changed", "registered", "counts"}
    assert document["incident"]["changes"] == {"first_run": True}
    kept = kept_scope(services, incident)
    assert kept.number == 1 and kept.actor == "system:incident-scope"
    assert kept.document == document


def test_an_incident_without_a_kept_run_has_none_to_give(services: Services) -> None:
    incident = _incident(services)
    with pytest.raises(ScopeRunMissing):
        kept_scope(services, incident)
    compute_scope(services, incident, actor=OFFICER)
    with pytest.raises(ScopeRunMissing):
        kept_scope(services, incident, 2)
    assert [run.number for run in incidents_for(services).scope_runs(incident)] == [1]


def _kept_text(services: Services, incident: int) -> str:
    """The incident's one kept document as its digest was made of: stored sealed (it
    holds the incident's title), opened here."""
    with read_transaction(services.engine) as connection:
        row = connection.execute(
            select(incident_scope_run.c.number, incident_scope_run.c.document).where(
                incident_scope_run.c.incident_id == incident
            )
        ).one()
    assert isinstance(row.document, str) and row.document.startswith(PREFIX)
    return incidents_for(services).words.open(incident, sealed_field(row.number), row.document)


def test_a_kept_run_changed_in_the_database_is_refused(services: Services) -> None:
    _reads(services, 3)
    incident = _incident(services)
    compute_scope(services, incident, actor=OFFICER)
    document = json.loads(_kept_text(services, incident))
    document["tiers"]["confirmed"] = document["tiers"]["confirmed"][1:]  # one patient hidden
    altered = canonical(document)
    column = incident_scope_run.c
    with write_transaction(services.engine) as connection:
        connection.execute(
            update(incident_scope_run)
            .where(column.incident_id == incident)
            .values(document=altered.decode())
        )
    with pytest.raises(ScopeRunTampered):
        kept_scope(services, incident)
    # A digest changed to match the altered text still disagrees with the ledger's entry.
    with write_transaction(services.engine) as connection:
        connection.execute(
            update(incident_scope_run)
            .where(column.incident_id == incident)
            .values(sha256=hashlib.sha256(altered).hexdigest())
        )
    with pytest.raises(ScopeRunTampered):
        kept_scope(services, incident)


def test_people_are_counted_on_the_day_they_were_first_exposed_in_the_groups_zone(
    services: Services,
) -> None:
    """The reads begin at 00:00 UTC on 1 January; read again from 20:00 UTC they fall on
    2 January in Hong Kong (CAREVAULT_TIMEZONE), where the group counts its days."""
    services.audit.record(
        [
            AuditEvent(
                tag=Tag.FHIR_READ,
                outcome=Outcome.SUCCESS,
                at_us=JAN_1 + 20 * 3_600_000_000 + n * 60_000_000,
                principal="staff:thief",
                source_address="203.0.113.9",
                resource_type="Patient",
                resource_id=f"p{n}",
                patient_pseudonym=f"ps{n}",
                categories=("identity",),
            )
            for n in range(2)
        ]
    )
    document = scope_document(services, _incident(services))
    assert document["counts"]["by_day"]["confirmed"] == {"2026-01-02": 2}
