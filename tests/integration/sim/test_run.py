"""Two simulated days of a small seeded group, on SQLite and PostgreSQL, with attacks.

One run per backend, shared by the tests of this module: seeding the group (its staff
and a week of slots) is what costs. The checks: the ledger carries simulated time, staff
act as themselves, and the ground truth equals what the gate handed out, re-read from
the ledger at the positions it records.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from carevault.bootstrap import Services, build_services
from carevault.clock import to_micros
from carevault.detect import alerts_as_dicts
from carevault.ledger.events import AuditEvent
from carevault.sim.attack.attacker import Attacker
from carevault.sim.attack.spec import parse
from carevault.sim.elements import at
from carevault.sim.runner import RUN_FILE, TRUTH_FILE, RunRequest, prepare, run, start_clock
from carevault.sim.workload.desk import Desk, Reply
from carevault.sim.workload.run import Simulation
from carevault.sim.workload.timeline import SimClock
from carevault.sim.workload.world import build_world
from tests.conftest import BACKENDS, make_settings
from tests.integration.seeding.conftest import schema_url
from tests.integration.sim.scenarios import SCENARIOS

START = date(2026, 3, 2)
DAYS = 2
PATIENTS = 40


@dataclass
class SimulatedRun:
    services: Services
    summary: dict[str, Any]
    truth: dict[str, Any]
    first_position: int

    def scenario(self, name: str) -> dict[str, Any]:
        return next(s for s in self.truth["scenarios"] if s["name"] == name)

    def events(self, start: int = 0) -> list[tuple[int, AuditEvent]]:
        store = self.services.audit_ledger.store
        return [(seq, AuditEvent.from_canonical(data)) for seq, data in store.entries(start)]


def _simulate(home: Path, url: str | None) -> Iterator[SimulatedRun]:
    settings = make_settings(home, url)
    clock = start_clock(START)
    services = build_services(settings, create_keys=True, migrate=True, clock=clock)
    try:
        request = RunRequest(START, DAYS, PATIENTS, 5, SCENARIOS, home / "run", visit_scale=40)
        prepare(services, request, home)
        first = services.audit_ledger.store.head()[0]
        summary = run(services, clock, request)
        truth = json.loads((home / "run" / TRUTH_FILE).read_text())
        assert json.loads((home / "run" / RUN_FILE).read_text())["days"] == DAYS
        yield SimulatedRun(services, summary, truth, first)
    finally:
        services.close()


@pytest.fixture(scope="module", params=BACKENDS)
def simulated(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SimulatedRun]:
    home = tmp_path_factory.mktemp(f"sim-{request.param}") / "home"
    if request.param == "sqlite":
        yield from _simulate(home, None)
        return
    with schema_url(request.getfixturevalue("pg_database")) as url:
        yield from _simulate(home, url)


def test_every_ledger_entry_of_the_run_carries_simulated_time(simulated: SimulatedRun) -> None:
    earliest = to_micros(start_clock(START).now)
    latest = to_micros(at(START + timedelta(days=DAYS), time(0, 0)))
    moments = [event.at_us for _, event in simulated.events()]
    assert moments and all(earliest <= moment <= latest for moment in moments)
    unwraps = simulated.services.unwrap_ledger.store
    for _, data in unwraps.entries(0):
        assert earliest <= json.loads(data)["at_us"] <= latest


def test_a_day_of_work_is_done_by_staff_acting_as_themselves(simulated: SimulatedRun) -> None:
    days = simulated.summary["days_run"]
    assert [d["day"] for d in days] == ["2026-03-02", "2026-03-03"]
    assert all(d["visits"] > 0 and d["ledger_entries"] > 0 for d in days), days
    events = [event for _, event in simulated.events(simulated.first_position)]
    encounters = [e for e in events if e.tag == "fhir:resource:create" and
                  e.resource_type == "Encounter" and e.role == "physician"]  # fmt: skip
    assert encounters, "physicians wrote the encounters of their visits"
    staff = [e for e in events if e.principal and e.principal.startswith("staff:")
             and e.tag.startswith("fhir:") and e.source_address != "203.0.113.66"]  # fmt: skip
    assert staff
    for event in staff:
        assert event.session_id and event.client_id == "clinic-desk"
        assert event.source_address and event.source_address.startswith("10.")
        assert event.user_agent and "CareVaultDesk" in event.user_agent
    # The same person always comes from the same workstation.
    devices: dict[str, set[tuple[str | None, str | None]]] = {}
    for event in staff:
        devices.setdefault(str(event.principal), set()).add(
            (event.source_address, event.user_agent)
        )
    assert all(len(seen) == 1 for seen in devices.values())
    signed_in = [e for e in events if e.tag == "auth:session:signed-in"]
    assert signed_in and all(e.principal and e.principal.startswith("staff:") for e in signed_in)
    slots = [e for e in events if e.resource_type == "Slot" and e.tag == "fhir:resource:update"]
    assert slots, "bookings in the published week take a Slot"
    lab = [e for e in events if e.principal == "client:lab-interface"]
    assert all(e.role == "integration" for e in lab)


def _returned(event: AuditEvent) -> list[str]:
    if event.tag == "fhir:resource:read":
        return [f"{event.resource_type}/{event.resource_id}"]
    return [str(reference) for reference in event.detail.get("returned", [])]


@pytest.mark.parametrize(
    "name", ["stolen-read", "everything-random", "integration-search", "new-paging"]
)
def test_ground_truth_is_exactly_what_the_gate_gave(simulated: SimulatedRun, name: str) -> None:
    scenario = simulated.scenario(name)
    assert scenario["requests"] > 0
    given = {p["pseudonym"]: p for p in scenario["patients"]}
    assert given, f"{name} was given records"
    store = simulated.services.audit_ledger.store
    sessions = set(scenario["sessions"])
    from_ledger: dict[str, set[str]] = {}
    categories: dict[str, set[str]] = {}
    for access in scenario["accesses"]:
        returned: set[str] = set()
        for position in access["ledger_positions"]:
            data = store.entry(position)
            assert data is not None
            event = AuditEvent.from_canonical(data)
            assert event.session_id in sessions or event.principal in scenario["principals"]
            if event.patient_pseudonym is None or event.outcome != "success":
                continue
            references = _returned(event)
            returned.update(references)
            from_ledger.setdefault(event.patient_pseudonym, set()).update(references)
            categories.setdefault(event.patient_pseudonym, set()).update(event.categories)
        # What the reply carried (patient data only) is what the ledger says was returned.
        assert set(access["given"]) == returned, access["request"]
        if access["status"] >= 400:
            assert access["given"] == []
    assert {p: set(g["references"]) for p, g in given.items()} == from_ledger
    for pseudonym, entry in given.items():
        assert set(entry["categories"]) <= categories[pseudonym]
        assert set(entry["ledger_categories"]) == categories[pseudonym]
        assert entry["references"][0].count("/") == 1
    if name == "stolen-read":
        assert scenario["source_address"] == "203.0.113.66"


def test_opening_co_workers_records_is_noticed_from_what_hr_recorded(
    simulated: SimulatedRun,
) -> None:
    """HR's records of staff (surnames; homes and HKID numbers of staff who are patients)
    are kept as blind tokens; a receptionist who opens co-workers' records without a
    care relationship is an alert naming those records."""
    scenario = simulated.scenario("coworker-snoop")
    given = {p["pseudonym"] for p in scenario["patients"]}
    assert given, "the receptionist was given co-workers' records"
    mine = [
        alert
        for alert in alerts_as_dicts(simulated.services)
        if f"staff:{alert['account']}" in scenario["principals"]
        and alert["detector"] in ("co-worker", "own-record")
    ]
    assert mine
    detection = simulated.services.detection
    assert detection is not None
    named = {p for alert in mine for p in detection.alerts.get(alert["id"]).patients}
    assert named and named <= given


def test_a_key_unwrap_outside_the_gate_is_recorded_only_in_the_unwrap_ledger(
    simulated: SimulatedRun,
) -> None:
    scenario = simulated.scenario("unwrap")
    assert scenario["accesses"] == [] and len(scenario["unwraps"]) == 5
    store = simulated.services.unwrap_ledger.store
    for unwrap in scenario["unwraps"]:
        data = store.entry(unwrap["unwrap_position"])
        assert data is not None
        document = json.loads(data)
        assert document["principal"] == "system:backup-agent"
        assert document["key_id"] == unwrap["pseudonym"]
    audit = [event for _, event in simulated.events()]
    assert not any(event.principal == "system:backup-agent" for event in audit)


def test_an_attacker_whose_account_is_suspended_stops_and_the_truth_ends_there(
    simulated: SimulatedRun,
) -> None:
    """A day after the run: a stolen account is suspended after three patients, as an
    automatic response would; the attacker is refused from then on and gets no more."""
    services = simulated.services
    scenario = parse(
        {
            "scenario": {"name": "suspended", "description": "cut off", "kind": "gate"},
            "who": {"account": "stolen", "role": "nurse"},
            "when": {"days": [1], "from_hour": 20, "to_hour": 23},
            "where": {"source_address": "203.0.113.77"},
            "what": {
                "patients": ["one-clinic"],
                "method": "read",
                "per_hour": 60,
                "per_day": 20,
            },  # fmt: skip
        },
        "suspended.toml",
    )
    given: list[str] = []

    def respond(desk: Desk, request: str, reply: Reply | None) -> None:
        if reply is not None and reply.ok:
            given.append(request)
            if len(given) == 3 and desk.account is not None:
                services.admin.suspend("detector:test", desk.account.username, reason="test")

    day = START + timedelta(days=DAYS)
    clock = SimClock(at(day, time(0, 0)))
    attacker = Attacker(scenario, 0.0, [respond])
    world = build_world(5, PATIENTS, START)
    replay = build_services(services.settings, clock=clock)
    try:
        Simulation(replay, world, clock, day, 1, 6, [attacker]).run()
    finally:
        replay.close()
    assert attacker.truth is not None
    truth = attacker.truth.as_json()
    assert len(truth["patients"]) == 3
    assert attacker.stopped
    refused = [a for a in truth["accesses"] if a["status"] == 401]
    assert len(refused) == 1 and refused[0]["given"] == []
    suspended_at = refused[0]["at"]
    assert all(p["first_given_at"] < suspended_at for p in truth["patients"])
