"""A history Bundle's ``meta.lastUpdated`` (and a search's by ``_lastUpdated``) is a
time before which every version stamped was committed when its versions were read: a
client that polls ``_history?_since=`` it next misses no write. It was the time the
Bundle was assembled, after the read, so a write stamped between the read and then (or
stamped before the read and committed after it, by another request's transaction) fell
between two polls."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Connection, event

from carevault import db
from carevault.bootstrap import Services
from carevault.db import hold_record_writes, write_transaction
from carevault.vault import writer as writer_module
from tests.integration.rest.test_interactions import create, patient
from tests.support.client import FhirTestClient


@contextmanager
def _write_in_flight(services: Services) -> Iterator[None]:
    """A record write that has taken the record-writes lock (so may have stamped) and
    does not commit until the block ends (two minutes at most)."""
    holding, release = threading.Event(), threading.Event()

    def in_flight() -> None:
        with write_transaction(services.engine) as connection:
            hold_record_writes(connection)
            holding.set()
            release.wait(120)

    writer = threading.Thread(target=in_flight)
    writer.start()
    try:
        assert holding.wait(30)
        yield
    finally:
        release.set()
        writer.join(30)


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_polling_since_the_bundles_last_updated_misses_no_write(api: FhirTestClient) -> None:
    first = create(api, patient())
    polled = api.get("/fhir/Patient/_history").json()
    as_of = polled["meta"]["lastUpdated"]
    assert _instant(as_of) >= _instant(first["meta"]["lastUpdated"])
    second = create(api, patient())
    assert _instant(second["meta"]["lastUpdated"]) >= _instant(as_of)
    following = api.get("/fhir/Patient/_history", params={"_since": as_of}).json()
    ids = {entry["resource"]["id"] for entry in following.get("entry", [])}
    assert second["id"] in ids


@pytest.mark.parametrize(
    "poll",
    [
        "/fhir/Patient/_history",
        "/fhir/Patient?_lastUpdated=ge2020-01-01&_count=500",
        "/fhir/Patient/{patient}/$everything?_since=2020-01-01",
    ],
)
def test_a_write_in_flight_is_in_the_poll_or_after_its_last_updated(
    api: FhirTestClient, services: Services, monkeypatch: pytest.MonkeyPatch, poll: str
) -> None:
    """A write that has stamped its version and not yet committed when the history is
    asked for: the Bundle has its version, or says it is as of a time at or before its
    stamp (so that the next poll ``_since`` it has it). The write is held at its commit
    until the history has been asked for and has had a second to answer; before the
    history waited for record writes in flight, SQLite's Bundle had neither. A search by
    ``_lastUpdated`` is a poll too, and ``$everything?_since``: as of a settled time as
    well. The write in flight is an update of the patient, in all three."""
    someone = create(api, patient())
    poll = poll.format(patient=someone["id"])
    holding, release = threading.Event(), threading.Event()

    def hold(connection: Connection) -> None:
        # The first transaction from now on that wrote a record, held once.
        if connection.info.pop("wrote_record", False) and not holding.is_set():
            holding.set()
            release.wait(30)

    def on_commit(connection: Connection) -> None:
        hold(connection)

    def on_statement(connection: Connection, cursor: Any, statement: str, *args: Any) -> None:
        if "COMMIT" in statement:
            hold(connection)

    def stamping(connection: Connection) -> None:
        # Where a record write's transaction stamps its versions (``vault.writer``).
        connection.info["wrote_record"] = True
        hold_record_writes(connection)

    monkeypatch.setattr(writer_module, "hold_record_writes", stamping)
    event.listen(services.engine, "commit", on_commit)
    event.listen(services.engine, "before_cursor_execute", on_statement)
    written: list[dict[str, Any]] = []
    answered: list[dict[str, Any]] = []
    try:
        writer = threading.Thread(
            target=lambda: written.append(
                api.put_json(
                    f"/fhir/Patient/{someone['id']}", {**someone, "gender": "female"}
                ).json()
            )
        )
        writer.start()
        assert holding.wait(30)
        reader = threading.Thread(target=lambda: answered.append(api.get(poll).json()))
        reader.start()
        reader.join(1.0)
        release.set()
        writer.join(30)
        reader.join(30)
    finally:
        release.set()
        event.remove(services.engine, "commit", on_commit)
        event.remove(services.engine, "before_cursor_execute", on_statement)
    (version,) = written
    (bundle,) = answered
    assert version["meta"]["versionId"] == "2"
    listed = {
        (entry["resource"]["id"], entry["resource"]["meta"]["versionId"])
        for entry in bundle.get("entry", [])
    }
    stamped = _instant(version["meta"]["lastUpdated"])
    assert (someone["id"], "2") in listed or stamped >= _instant(bundle["meta"]["lastUpdated"])


def test_a_poll_inside_a_transaction_bundle_answers_without_waiting_on_itself(
    api: FhirTestClient,
) -> None:
    """A transaction's GET entries run in its write transaction, after its writes: the
    poll's settling waited there for the very transaction that ran it (on PostgreSQL
    for good, on SQLite until the lock timed out). It is as of the transaction's time."""
    someone = create(api, patient())
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {**someone, "gender": "female"},
                "request": {"method": "PUT", "url": f"Patient/{someone['id']}"},
            },
            {"request": {"method": "GET", "url": "Patient?_lastUpdated=ge2020-01-01"}},
        ],
    }
    replies: list[Any] = []
    poster = threading.Thread(
        target=lambda: replies.append(api.post_json("/fhir", bundle)), daemon=True
    )
    poster.start()
    poster.join(60)
    assert not poster.is_alive(), "the transaction waited on itself"
    (reply,) = replies
    assert reply.status_code == 200, reply.text
    (_, found) = reply.json()["entry"]
    ids = {entry["resource"]["id"] for entry in found["resource"].get("entry", [])}
    assert someone["id"] in ids


def test_a_poll_waits_for_writes_in_flight_and_holds_up_no_new_one(
    api: FhirTestClient, services: Services, backend: str
) -> None:
    """PostgreSQL: a poll waits for the record writes in flight when it began, not for
    those that begin after it (a lock asked for exclusively queued every new writer
    behind the slowest one in flight, for as long as it took)."""
    if backend != "postgres":
        pytest.skip("SQLite has one writer: a write in flight holds every other up anyway")
    create(api, patient())
    polled: list[Any] = []
    created: list[dict[str, Any]] = []
    with _write_in_flight(services):
        poller = threading.Thread(
            target=lambda: polled.append(api.get("/fhir/Patient/_history")), daemon=True
        )
        poller.start()
        poller.join(1.0)
        waited = not polled
        creator = threading.Thread(
            target=lambda: created.append(create(api, patient())), daemon=True
        )
        creator.start()
        # Less than the poll's own wait (``db.SETTLE_SECONDS``): a write held up behind
        # the poll would be let through only when the poll gives up.
        creator.join(20)
    poller.join(30)
    assert waited, "the poll did not wait for the write in flight"
    assert created, "a new write queued behind the poll"
    assert polled and polled[0].status_code == 200


def test_a_poll_whose_writes_in_flight_do_not_end_is_told_to_come_back(
    api: FhirTestClient, services: Services, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write in flight that does not end (a stuck transaction) does not hold a poll for
    ever: past the settling's wait it answers 503, transient, and nothing was read."""
    if backend != "postgres":
        pytest.skip("SQLite: the poll waits for the write lock as every writer does")
    monkeypatch.setattr(db, "SETTLE_SECONDS", 0.3)
    with _write_in_flight(services):
        answered = api.get("/fhir/Patient/_history")
    assert answered.status_code == 503, answered.text
    assert answered.json()["issue"][0]["code"] == "transient"
