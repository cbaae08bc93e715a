"""A history Bundle's ``meta.lastUpdated`` (and a search's by ``_lastUpdated``) is a
time before which every version stamped was committed when its versions were read: a
client that polls ``_history?_since=`` it next misses no write. It was the time the Bundle was assembled, after the read, so a
write stamped between the read and then (or stamped before the read and committed after
it, by another request's transaction) fell between two polls."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Connection, event

from carevault.bootstrap import Services
from carevault.db import hold_record_writes
from carevault.vault import writer as writer_module
from tests.integration.rest.test_interactions import create, patient
from tests.support.client import FhirTestClient


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
    "poll", ["/fhir/Patient/_history", "/fhir/Patient?_lastUpdated=ge2020-01-01&_count=500"]
)
def test_a_write_in_flight_is_in_the_poll_or_after_its_last_updated(
    api: FhirTestClient, services: Services, monkeypatch: pytest.MonkeyPatch, poll: str
) -> None:
    """A write that has stamped its version and not yet committed when the history is
    asked for: the Bundle has its version, or says it is as of a time at or before its
    stamp (so that the next poll ``_since`` it has it). The write is held at its commit
    until the history has been asked for and has had a second to answer; before the
    history waited for record writes in flight, SQLite's Bundle had neither. A search by
    ``_lastUpdated`` is a poll too, and is as of a settled time as well."""
    create(api, patient())
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
        writer = threading.Thread(target=lambda: written.append(create(api, patient())))
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
    listed = {entry["resource"]["id"] for entry in bundle.get("entry", [])}
    stamped = _instant(version["meta"]["lastUpdated"])
    assert version["id"] in listed or stamped >= _instant(bundle["meta"]["lastUpdated"])
