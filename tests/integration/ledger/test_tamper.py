"""An intruder with the database edits the audit ledger; ``audit verify`` catches each
edit and names the entry or checkpoint, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, insert, select, update

from carevault.bootstrap import Services
from carevault.db import write_transaction
from carevault.ledger.checkpoints import CheckpointSigner
from carevault.ledger.schema import audit_tables
from carevault.ledger.store import LedgerEntry, LedgerStore
from tests.support.client import FhirTestClient
from tests.support.server import environment, run_cli

ENTRY = audit_tables.entry
TILE = audit_tables.tile
HEAD = audit_tables.head
CHECKPOINT = audit_tables.checkpoint


def activity(api: FhirTestClient, patients: int = 6) -> None:
    for n in range(patients):
        created = api.post(
            "/fhir/Patient",
            json={"resourceType": "Patient", "name": [{"family": f"Tamper{n}"}]},
        ).json()
        api.get(f"/fhir/Patient/{created['id']}")
    api.get("/fhir/Patient?family=tamper0")


@pytest.fixture
def ledger_with_history(api: FhirTestClient, services: Services) -> Services:
    activity(api)
    services.audit_ledger.checkpoints.make("test")
    activity(api, 3)
    services.audit_ledger.checkpoints.make("test")
    report = services.audit_ledger.verify()
    assert report.ok, report.problems
    assert report.entries >= 20 and report.checkpoints == 2 and report.witnesses == 1
    return services


def problems(services: Services) -> list[str]:
    report = services.audit_ledger.verify()
    assert not report.ok
    return report.problems


def rows(services: Services) -> list[Any]:
    with services.engine.connect() as connection:
        return list(connection.execute(select(ENTRY).order_by(ENTRY.c.seq)).all())


def test_a_changed_entry_is_named(ledger_with_history: Services) -> None:
    services = ledger_with_history
    target = rows(services)[7]
    document = json.loads(target.entry)
    document["principal"] = "someone-else"
    with write_transaction(services.engine) as connection:
        connection.execute(
            update(ENTRY)
            .where(ENTRY.c.seq == 7)
            .values(entry=json.dumps(document, sort_keys=True, separators=(",", ":")).encode())
        )
    assert any("entry 7 does not match" in problem for problem in problems(services))


def test_a_deleted_entry_is_named(ledger_with_history: Services) -> None:
    services = ledger_with_history
    with write_transaction(services.engine) as connection:
        connection.execute(delete(ENTRY).where(ENTRY.c.seq == 5))
    found = problems(services)
    assert any("entry 5 is missing" in problem for problem in found)


def test_reordered_entries_are_named(ledger_with_history: Services) -> None:
    services = ledger_with_history
    third, fourth = rows(services)[3], rows(services)[4]
    with write_transaction(services.engine) as connection:
        connection.execute(update(ENTRY).where(ENTRY.c.seq == 3).values(entry=fourth.entry))
        connection.execute(update(ENTRY).where(ENTRY.c.seq == 4).values(entry=third.entry))
    assert any("entry 3 does not match" in problem for problem in problems(services))


def test_an_inserted_entry_is_found(ledger_with_history: Services) -> None:
    services = ledger_with_history
    size = len(rows(services))
    with write_transaction(services.engine) as connection:
        connection.execute(
            insert(ENTRY).values(
                ledger="audit", seq=size, at_us=1, subject=None, actor=None, entry=b"{}"
            )
        )
    assert any("were inserted" in problem for problem in problems(services))


def test_a_swapped_leaf_hash_is_named(ledger_with_history: Services) -> None:
    services = ledger_with_history
    with services.engine.connect() as connection:
        tile = connection.execute(
            select(TILE).where(TILE.c.level == 0, TILE.c.tile_index == 0)
        ).one()
    hashes = bytearray(tile.hashes)
    hashes[2 * 32 : 3 * 32] = bytes(32)
    with write_transaction(services.engine) as connection:
        connection.execute(
            update(TILE)
            .where(TILE.c.level == 0, TILE.c.tile_index == 0)
            .values(hashes=bytes(hashes))
        )
    assert any("entry 2 does not match" in problem for problem in problems(services))


def test_a_checkpoint_signed_with_another_key_is_caught(ledger_with_history: Services) -> None:
    services = ledger_with_history
    latest = services.audit_ledger.checkpoints.latest()
    assert latest is not None
    forger = CheckpointSigner(
        services.audit_ledger.checkpoints.signer.origin, Ed25519PrivateKey.generate()
    )
    with write_transaction(services.engine) as connection:
        connection.execute(
            update(CHECKPOINT)
            .where(CHECKPOINT.c.checkpoint_id == latest.checkpoint_id)
            .values(note=forger.sign(latest.size, latest.root))
        )
    found = problems(services)
    assert any(
        f"checkpoint #{latest.checkpoint_id}" in problem and "not signed" in problem
        for problem in found
    )


def test_a_forked_history_is_caught_by_checkpoints_and_the_witness(
    ledger_with_history: Services,
) -> None:
    """The intruder rewrites entry 4 and rebuilds the whole tree so that entries, tiles
    and head agree; only signed checkpoints and the witness can tell."""
    services = ledger_with_history
    originals = rows(services)
    forged = json.loads(originals[4].entry)
    forged["reason"] = "nothing to see"
    with write_transaction(services.engine) as connection:
        connection.execute(delete(ENTRY))
        connection.execute(delete(TILE))
        connection.execute(delete(HEAD))
        store = LedgerStore(services.engine, audit_tables, "audit")
        store.append(
            connection,
            [
                LedgerEntry(
                    row.at_us,
                    json.dumps(forged, sort_keys=True, separators=(",", ":")).encode()
                    if row.seq == 4
                    else row.entry,
                    row.subject,
                    row.actor,
                )
                for row in originals
            ],
        )
    found = problems(services)
    assert not any("entry" in problem and "does not match the tree" in problem for problem in found)
    assert any("between 0 and" in problem for problem in found), found
    # Even with every checkpoint deleted too, the witness remembers.
    with write_transaction(services.engine) as connection:
        connection.execute(delete(CHECKPOINT))
    found = problems(services)
    assert any("witness" in problem and "fork" in problem for problem in found), found


def test_a_rolled_back_ledger_is_caught_by_the_witness(
    api: FhirTestClient, ledger_with_history: Services
) -> None:
    """The intruder restores the ledger tables from an older copy of the database."""
    services = ledger_with_history
    with services.engine.connect() as connection:
        saved = {
            table: [row._asdict() for row in connection.execute(select(table)).all()]
            for table in (ENTRY, TILE, HEAD, CHECKPOINT)
        }
    activity(api, 2)
    services.audit_ledger.checkpoints.make("test")
    assert services.audit_ledger.verify().ok
    with write_transaction(services.engine) as connection:
        for table in (ENTRY, TILE, HEAD, CHECKPOINT):
            connection.execute(delete(table))
            if saved[table]:
                connection.execute(insert(table), saved[table])
    found = problems(services)
    assert any("rolled back" in problem for problem in found), found


def test_audit_verify_exits_non_zero_and_names_the_entry(
    api: FhirTestClient, services: Services, tmp_path: Path
) -> None:
    activity(api, 2)
    services.audit_ledger.checkpoints.make("test")
    env = environment(services.settings.home, services.settings.database_url)
    good = run_cli(env, "audit", "verify")
    assert good.returncode == 0, good.stderr
    assert "audit: OK" in good.stdout and "unwrap: OK" in good.stdout
    with write_transaction(services.engine) as connection:
        connection.execute(update(ENTRY).where(ENTRY.c.seq == 1).values(entry=b'{"x":1}'))
    bad = run_cli(env, "audit", "verify")
    assert bad.returncode == 1
    assert "entry 1 does not match" in bad.stderr
