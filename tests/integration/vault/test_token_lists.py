"""Each current record's search tokens are kept twice, in the index searches use and in
the row's own list (what replacing or deleting them goes by): after creates, updates
(twice in one transaction too), deletions and a record written again after its
deletion, both say the same, and say what the record as it stands derives, on SQLite
and PostgreSQL."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import Connection, select

from carevault.bootstrap import Services
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller
from carevault.vault import reindex as reindex_module
from carevault.vault.reindex import ReindexIncomplete, reindex
from carevault.vault.tables import resource_head
from carevault.vault.writer import Delete, Put, search_tokens
from tests.support.tokens import indexed_tokens, listed_tokens

pytestmark = pytest.mark.postgres

SYSTEM = Caller(principal="system:test")
PATIENT, CONDITION = RESOURCE_TYPES["Patient"], RESOURCE_TYPES["Condition"]


def _patient(patient_id: str, family: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": patient_id,
        "name": [{"family": family, "given": ["Tai Man"]}],
        "gender": "male",
        "birthDate": "1980-05-01",
    }


def _condition(condition_id: str, patient_id: str, text: str, status: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": condition_id,
        "subject": {"reference": f"Patient/{patient_id}"},
        "code": {"text": text},
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": status,
                }
            ]
        },
    }


def test_the_index_and_each_rows_list_agree_with_the_record_as_it_stands(
    services: Services,
) -> None:
    gate, vault = services.gate, services.vault
    final = {
        ("Patient", "p1"): _patient("p1", "Lee"),
        ("Patient", "p2"): _patient("p2", "Ho"),
        ("Condition", "c1"): _condition("c1", "p1", "Asthma", "resolved"),
        ("Condition", "c2"): _condition("c2", "p2", "Gout", "active"),
    }
    gate.write(
        SYSTEM,
        [
            Put(PATIENT, "p1", _patient("p1", "Chan")),
            Put(PATIENT, "p2", _patient("p2", "Ho")),
            Put(CONDITION, "c1", _condition("c1", "p1", "Asthma", "active")),
            Put(CONDITION, "c2", _condition("c2", "p2", "Gout", "active")),
            Put(CONDITION, "c3", _condition("c3", "p2", "Eczema", "active")),
        ],
    )
    # Twice in one transaction: the second replaces tokens not stored yet.
    gate.write(
        SYSTEM,
        [
            Put(PATIENT, "p1", _patient("p1", "Wong")),
            Put(PATIENT, "p1", final[("Patient", "p1")]),
            Put(CONDITION, "c1", final[("Condition", "c1")]),
        ],
    )
    gate.write(SYSTEM, [Delete(CONDITION, "c2"), Delete(CONDITION, "c3")])
    gate.write(SYSTEM, [Put(CONDITION, "c2", final[("Condition", "c2")])])

    with services.engine.connect() as connection:
        heads = {
            (row.resource_type, row.resource_id): (int(row.row_id), bool(row.deleted))
            for row in connection.execute(select(resource_head))
        }
    indexed, listed = indexed_tokens(services.engine), listed_tokens(services.engine)
    assert indexed == listed
    expected = {
        heads[key][0]: search_tokens(vault, RESOURCE_TYPES[key[0]], resource)
        for key, resource in final.items()
    }
    assert indexed == expected
    assert heads[("Condition", "c3")][1]  # deleted: no tokens, no list
    # The names the Patient had on its way are found no more.
    current = indexed[heads[("Patient", "p1")][0]]
    for family in ("Chan", "Wong"):
        stale = (
            search_tokens(vault, PATIENT, _patient("p1", family))
            - expected[heads[("Patient", "p2")][0]]
        )
        assert stale  # the family name's own tokens
        assert not stale & current


def _locked(services: Services, resource_id: str) -> Connection:
    """A connection holding ``resource_id``'s head as a writer does (FOR UPDATE)."""
    connection = services.engine.connect()
    connection.begin()
    connection.execute(
        select(resource_head.c.row_id)
        .where(resource_head.c.resource_id == resource_id)
        .with_for_update()
    )
    return connection


# Row locks are PostgreSQL's: SQLite's write transaction already excludes every other.
@pytest.mark.parametrize("backend", ["postgres"])
def test_reindex_leaves_a_row_a_writer_holds_and_takes_it_once_let_go(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Replacing a row's tokens in two transactions at once would leave a list that the
    # other's commit made stale (an old value found for good): reindexing takes the
    # writer's lock, never waits for it (no deadlock), and comes back to the row.
    monkeypatch.setattr(reindex_module, "LOCKED_PAUSE_SECONDS", 0.3)
    gate = services.gate
    gate.write(SYSTEM, [Put(PATIENT, "p1", _patient("p1", "Chan"))])
    gate.write(SYSTEM, [Put(PATIENT, "p2", _patient("p2", "Ho"))])
    writer = _locked(services, "p1")
    threading.Timer(0.1, writer.close).start()  # the writer gives up, its lock goes
    assert reindex(services.vault, principal="system:test", purpose="reindex") == 2
    assert listed_tokens(services.engine) == indexed_tokens(services.engine)
    assert len(indexed_tokens(services.engine)) == 2


@pytest.mark.parametrize("backend", ["postgres"])
def test_reindex_says_so_when_a_row_stays_locked(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reindex_module, "LOCKED_PAUSE_SECONDS", 0.01)
    services.gate.write(SYSTEM, [Put(PATIENT, "p1", _patient("p1", "Chan"))])
    writer = _locked(services, "p1")
    try:
        with pytest.raises(ReindexIncomplete, match="1 records stayed locked"):
            reindex(services.vault, principal="system:test", purpose="reindex")
    finally:
        writer.close()
    assert listed_tokens(services.engine) == indexed_tokens(services.engine)
