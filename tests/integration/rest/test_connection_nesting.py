"""No request holds two connections of one pool at once.

A request that holds a connection and waits for a second can, when every connection of
the pool is held by such requests, wait out the pool's timeout: under 32 clients on
PostgreSQL with one server process, creates were answered 503 after 30 s (bench.mixed).
Every checkout of the records and key pools is watched while staff create, read, search,
update, patch and open ``$everything``; a checkout by a thread that already holds one of
the same pool fails the test, with the call path that made it."""

from __future__ import annotations

import json
import threading
import traceback
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event

from carevault.bootstrap import Services
from carevault.db import holds_own_connection
from tests.integration.access.group import TW, Group, build_group
from tests.support.client import FhirTestClient


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


class NestingWatch:
    """Counts, per pool and thread, the connections held; notes each nested checkout."""

    def __init__(self, engines: list[Engine]) -> None:
        self.held: Counter[tuple[int, int]] = Counter()
        self.nested: Counter[str] = Counter()
        self.checkouts = 0
        self._lock = threading.Lock()
        for engine in {id(engine): engine for engine in engines}.values():
            pool = id(engine.pool)
            event.listen(
                engine.pool,
                "checkout",
                lambda _dbapi, record, _proxy, pool=pool, engine=engine: self._checkout(
                    pool, engine, record
                ),
            )
            event.listen(engine.pool, "checkin", self._checkin)

    def _checkout(self, pool: int, engine: Engine, record: Any) -> None:
        key = (pool, threading.get_ident())
        # The event loop's own SQLite connection (its reads by id) is held for the
        # engine's life by no request: a request on the loop may hold one more.
        allowed = 1 if holds_own_connection(engine) else 0
        with self._lock:
            self.checkouts += 1
            if self.held[key] > allowed:
                path = " <- ".join(
                    f"{frame.name} ({frame.filename.rsplit('/carevault/', 1)[-1]}:{frame.lineno})"
                    for frame in reversed(traceback.extract_stack())
                    if "/src/carevault/" in frame.filename
                )
                self.nested[path] += 1
            self.held[key] += 1
        record.info["nesting_watch"] = key

    def _checkin(self, _dbapi: Any, record: Any) -> None:
        key = record.info.pop("nesting_watch", None)
        if key is not None:
            with self._lock:
                self.held[key] -= 1


def test_no_request_waits_for_a_second_connection_of_its_pool(group: Group) -> None:
    watch = NestingWatch([group.services.engine, group.services.key_engine])
    doctor = group.doctor_tw
    writing = {**doctor.headers, "content-type": "application/fhir+json"}
    failures: list[str] = []

    def work(worker: int) -> None:
        for n in range(3):
            family = f"Nesting{worker}x{n}"
            body = {
                "resourceType": "Patient",
                "name": [{"family": family}],
                "managingOrganization": {"reference": f"Organization/{TW}"},
            }
            created = group.web.post("/fhir/Patient", content=json.dumps(body), headers=writing)
            if created.status_code != 201:
                failures.append(f"create {created.status_code}")
                continue
            path = f"/fhir/Patient/{created.json()['id']}"
            stored = group.web.get(path, headers=doctor.headers)
            found = group.web.get(f"/fhir/Patient?name={family}", headers=doctor.headers)
            changed = {**stored.json(), "gender": "other"}
            updated = group.web.put(path, content=json.dumps(changed), headers=writing)
            patched = group.web.patch(
                path,
                content=json.dumps({"birthDate": "1980-01-01"}).encode(),
                headers={**doctor.headers, "content-type": "application/merge-patch+json"},
            )
            everything = group.web.get(f"{path}/$everything", headers=doctor.headers)
            statuses = [r.status_code for r in (stored, found, updated, patched, everything)]
            if statuses != [200] * 5:
                failures.append(f"read/search/update/patch/$everything {statuses}")

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not failures
    assert watch.checkouts > 100  # the watch saw the requests' connections
    assert not watch.nested, "\n".join(f"{n}x {path}" for path, n in watch.nested.items())
