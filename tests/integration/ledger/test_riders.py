"""Riders of the group commit: a request's own write commits with its audit entries or
not at all; one that declines is left out without failing its neighbours."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import Column, Connection, MetaData, String, Table, insert, select

from carevault.config import Settings
from carevault.db import make_engine, read_transaction, write_transaction
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.store import LedgerEntry, LedgerStore
from carevault.ledger.tables import ledger_tables
from carevault.ledger.trail import AuditUnavailable, Declined
from carevault.ledger.writer import LedgerWriter

METADATA = MetaData()
TABLES = ledger_tables(METADATA, "r")
NOTE = Table("rider_note", METADATA, Column("name", String(20), primary_key=True))


@pytest.fixture
def store(settings: Settings) -> Iterator[LedgerStore]:
    engine = make_engine(settings.resolved_database_url)
    settings.home.mkdir(parents=True, exist_ok=True)
    METADATA.create_all(engine)
    yield LedgerStore(engine, TABLES, "riders")
    engine.dispose()


@dataclass
class Note:
    """Writes its name, or declines (before writing), or fails after writing."""

    name: str
    decline: bool = False
    fail: bool = False
    done: list[str] = field(default_factory=list)

    def ride(self, connection: Connection) -> None:
        if self.decline:
            raise Declined(f"{self.name} declined")
        connection.execute(insert(NOTE).values(name=self.name))
        if self.fail:
            raise RuntimeError("the rider broke after writing")

    def committed(self) -> None:
        self.done.append(self.name)


def entry(name: str) -> LedgerEntry:
    return LedgerEntry(1_000_000, f'{{"who":"{name}"}}'.encode(), actor=name)


def notes(store: LedgerStore) -> set[str]:
    with read_transaction(store.engine) as connection:
        return notes_in(connection)


def test_a_declining_rider_leaves_out_its_entries_and_no_one_elses(store: LedgerStore) -> None:
    writer = LedgerWriter(store)
    riders = [Note(f"n{i}", decline=i % 5 == 3) for i in range(40)]
    outcomes: dict[str, str] = {}
    lock = threading.Lock()

    def work(rider: Note) -> None:
        try:
            writer.append([entry(rider.name)], rider)
            outcome = "written"
        except Declined:
            outcome = "declined"
        with lock:
            outcomes[rider.name] = outcome

    threads = [threading.Thread(target=work, args=(rider,)) for rider in riders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    declined = {r.name for r in riders if r.decline}
    written = {r.name for r in riders} - declined
    assert {n for n, o in outcomes.items() if o == "declined"} == declined
    assert notes(store) == written
    assert {data.decode() for _, data in store.entries()} == {
        f'{{"who":"{name}"}}' for name in written
    }
    assert {name for r in riders for name in r.done} == written


def test_a_rider_that_fails_fails_its_commit_whole(store: LedgerStore) -> None:
    writer = LedgerWriter(store)
    broken = Note("broken", fail=True)
    with pytest.raises(AuditUnavailable):
        writer.append([entry("broken")], broken)
    writer.append([entry("after")], Note("after"))
    writer.close()
    # Neither the rider's write nor its entries: the data it guarded is not released.
    assert notes(store) == {"after"}
    assert [data for _, data in store.entries()] == [b'{"who":"after"}']
    assert broken.done == []


def test_inside_a_callers_transaction_the_rider_writes_there(store: LedgerStore) -> None:
    writer = LedgerWriter(store)
    kept = Note("kept")
    with pytest.raises(RuntimeError, match="rolls back"), write_transaction(store.engine) as held:
        with pytest.raises(Declined):
            writer.record([event("no")], held, Note("no", decline=True))
        writer.record([event("kept")], held, kept)
        assert notes_in(held) == {"kept"}
        raise RuntimeError("the caller's transaction rolls back")
    writer.close()
    assert notes(store) == set()
    assert list(store.entries()) == []
    # Not remembered as durable: the caller's transaction could (and did) roll back.
    assert kept.done == []


def event(name: str) -> AuditEvent:
    return AuditEvent(Tag.FHIR_READ, Outcome.SUCCESS, 1_000_000, principal=f"staff:{name}")


def notes_in(connection: Connection) -> set[str]:
    return {name for (name,) in connection.execute(select(NOTE.c.name))}
