"""The blocked-address middleware, which every request passes first, reads the
containment state in a worker thread when what it holds is stale, never on the event
loop: a pool round trip there stalls every request the process serves. A state still
fresh answers without reading."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from carevault.bootstrap import Services
from carevault.web.app import create_app
from tests.support.client import FhirTestClient


@pytest.fixture
def backend() -> str:
    """PostgreSQL only: there a read is a pool round trip (SQLite's reads go through a
    connection of their own, which the engine's events do not see)."""
    return "postgres"


@pytest.fixture
def loops(services: Services) -> Iterator[list[bool]]:
    """For each read of the containment table: whether it ran on an event loop."""
    seen: list[bool] = []

    def before(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if "FROM containment" in statement:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                seen.append(False)
            else:
                seen.append(True)

    event.listen(services.containment.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(services.containment.engine, "before_cursor_execute", before)


def test_a_stale_containment_state_is_read_in_a_thread(
    services: Services, loops: list[bool]
) -> None:
    services.containment.refresh_seconds = 0.0
    with FhirTestClient(create_app(services.settings, services)) as web:
        for _ in range(3):
            assert web.get("/fhir/metadata").status_code == 200
    assert loops and not any(loops)


def test_a_fresh_containment_state_answers_without_reading(
    services: Services, loops: list[bool]
) -> None:
    services.containment.refresh_seconds = 60.0
    with FhirTestClient(create_app(services.settings, services)) as web:
        assert web.get("/fhir/metadata").status_code == 200
        read = len(loops)
        for _ in range(3):
            assert web.get("/fhir/metadata").status_code == 200
    assert len(loops) == read
    assert not any(loops)
