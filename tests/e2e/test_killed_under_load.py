"""Killing the server under a mixed load, again and again, on SQLite and PostgreSQL; and
PostgreSQL going away under load. After each restart every acknowledged write is there,
no transaction is half there, every answer a client received has its ledger entry, and
both ledgers verify. ``CAREVAULT_TEST_KILLS`` sets how many kills (bench/ runs more)."""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from carevault.bootstrap import build_services
from carevault.config import Settings
from tests.support.mixed_load import (
    Cast,
    MixedLoad,
    Observed,
    containment_switch,
    ledger_answers,
    prepare_home,
    wait_until,
)
from tests.support.server import environment, running_server
from tests.support.tcp_proxy import TcpProxy
from tests.support.tcp_proxy import proxied as proxied_through

pytestmark = pytest.mark.e2e

KILLS = int(os.environ.get("CAREVAULT_TEST_KILLS", "1"))


def server_env(settings: Settings, database_url: str | None = None) -> dict[str, str]:
    return environment(
        settings.home,
        database_url or settings.database_url,
        {
            "CAREVAULT_DIRECT_GRANT": "true",
            "CAREVAULT_ARGON2_MEMORY_KIB": "8192",
            "CAREVAULT_ARGON2_TIME_COST": "1",
            "CAREVAULT_CHECKPOINT_SECONDS": "2",
            # The load comes from one address as fast as it can: no limit is under test.
            "CAREVAULT_RATE_LIMIT_SOURCE_PER_SECOND": "0",
            "CAREVAULT_RATE_LIMIT_ACCOUNT_PER_SECOND": "0",
            "CAREVAULT_RATE_LIMIT_SIGN_IN_PER_SECOND": "0",
            # The detectors run, but only raise alerts: a clerk registering patients as
            # fast as a loop can would otherwise (rightly) be stepped up mid-test.
            "CAREVAULT_DETECT_RESPONSES": "high=raise,medium=raise",
            "CAREVAULT_RELEASE_BUDGET": "front_desk=1000000/1000000",
        },
    )


def check_after_restart(
    settings: Settings, env: dict[str, str], cast: Cast, observed: Observed, log: Path
) -> None:
    with running_server(env, log) as server:
        headers = {"authorization": f"Bearer {cast.desk_token}"}
        with httpx.Client(base_url=server.fhir, headers=headers, timeout=30) as client:
            for resource_id, family in observed.created.items():
                response = client.get(f"/Patient/{resource_id}")
                assert response.status_code == 200, (resource_id, response.text)
                assert response.json()["name"][0]["family"] == family
            for marker, acknowledged in observed.transactions_tried.items():
                found = client.get("/Patient", params={"family": marker, "_count": "50"}).json()
                # A string search matches by prefix: marker ...n2 also finds ...n20.
                matches = [
                    e
                    for e in found.get("entry", [])
                    if e["search"]["mode"] == "match"
                    and e["resource"]["name"][0]["family"] == marker
                ]
                assert len(matches) in (0, 2), (marker, len(matches))
                if acknowledged:
                    assert len(matches) == 2, marker
    services = build_services(settings)
    try:
        entries = [data for _, data in services.audit_ledger.store.entries()]
        for ledger in services.ledgers():
            report = ledger.verify()
            assert report.ok, report.problems
    finally:
        services.close()
    recorded, tokens = ledger_answers(entries)
    missing = observed.answers - recorded
    assert not missing, f"answers without their ledger entry: {dict(missing)}"
    assert tokens["issued"] >= observed.sign_ins["issued"]


def run_lives(
    settings: Settings, env: dict[str, str], cast: Cast, log: Path, kills: int, seed: int
) -> Observed:
    observed = Observed()
    chooser = random.Random(seed)
    for life in range(kills):
        with running_server(env, log) as server:
            load = MixedLoad(
                server.url,
                cast.desk_token,
                observed,
                seed=seed * 1000 + life,
                signers=cast.signers,
                containment=containment_switch(env, cast.officer) if life == 0 else None,
            ).start()
            # The kill lands at a random moment once the load is flowing (a cold server on
            # a loaded machine may take seconds over its first answers).
            wanted = sum(observed.statuses.values()) + 10
            wait_until(lambda wanted=wanted: sum(observed.statuses.values()) >= wanted, 60)
            time.sleep(chooser.uniform(0.5, 3.0))
            server.kill()
            load.finish()
    return observed


def test_a_server_killed_under_mixed_load_keeps_every_acknowledged_thing(
    settings: Settings, tmp_path: Path
) -> None:
    env = server_env(settings)
    cast = prepare_home(settings)
    observed = run_lives(settings, env, cast, tmp_path, KILLS, seed=16)
    assert len(observed.created) >= 5 * KILLS
    # Nothing was refused: every answer was a success (a dead server gives none at all).
    assert set(observed.statuses) <= {200, 201}, observed.statuses
    check_after_restart(settings, env, cast, observed, tmp_path)


@pytest.fixture
def proxied(settings: Settings) -> Iterator[tuple[TcpProxy, str]]:
    """A proxy in front of PostgreSQL and the database URL that goes through it."""
    with proxied_through(settings.resolved_database_url) as made:
        yield made


@pytest.mark.parametrize("backend", ["postgres"])
def test_without_postgresql_requests_fail_closed_and_service_returns_by_itself(
    settings: Settings, proxied: tuple[TcpProxy, str], tmp_path: Path
) -> None:
    proxy, url = proxied
    env = server_env(settings, url)
    cast = prepare_home(settings)
    with running_server(env, tmp_path) as server:
        bearer = cast.desk_token
        headers = {"authorization": f"Bearer {bearer}", "content-type": "application/fhir+json"}
        with httpx.Client(base_url=server.fhir, headers=headers, timeout=30) as client:
            body = json.dumps({"resourceType": "Patient", "name": [{"family": "Before"}]})
            first = client.post("/Patient", content=body)
            assert first.status_code == 201
            proxy.cut()
            refused = [client.post("/Patient", content=body) for _ in range(3)]
            refused += [client.get(f"/Patient/{first.json()['id']}") for _ in range(3)]
            assert {response.status_code for response in refused} == {503}
            assert all("storage unavailable" in r.text or "ledger" in r.text for r in refused)
            proxy.restore()
            assert wait_until(
                lambda: client.get(f"/Patient/{first.json()['id']}").status_code == 200, 30
            )
            after = client.post("/Patient", content=body)
            assert after.status_code == 201
    log = server.log.read_text()
    assert "storage unavailable: database unreachable" in log or "append of" in log
    services = build_services(settings)
    try:
        for ledger in services.ledgers():
            assert ledger.verify().ok
    finally:
        services.close()
