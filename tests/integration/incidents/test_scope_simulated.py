"""On every attack scenario of the simulator, the scope's confirmed tier is the ground
truth exactly (patients and categories), and the gate bypass is in the decrypted tier.

The bundled scenarios are replayed on two simulated days of a small group (their days
and volumes compressed, everything else as written), on SQLite and PostgreSQL, with
small Parquet segments so that the scope reads sealed segments and the tail.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from carevault.bootstrap import Services, build_services
from carevault.incidents import Actor, declare_case, scope_document
from carevault.sim.attack.spec import Scenario, load
from carevault.sim.runner import TRUTH_FILE, RunRequest, prepare, run, start_clock
from tests.conftest import BACKENDS, make_settings
from tests.integration.seeding.conftest import schema_url

START = date(2026, 3, 2)
SCENARIO_DIR = Path(__file__).parents[3] / "src" / "carevault" / "sim" / "attack" / "scenarios"
OFFICER = Actor("staff:officer.test")


def _compressed(scenario: Scenario, index: int) -> Scenario:
    """The scenario on day 1 or 2 of the run, a few patients' worth."""
    what = replace(
        scenario.what,
        per_hour=min(scenario.what.per_hour, 40),
        per_day=min(scenario.what.per_day, 12),
        page_size=min(scenario.what.page_size, 10),
        total=None,
    )
    when = replace(scenario.when, days=(1 + index % 2,), dates=())
    return replace(scenario, what=what, when=when)


SCENARIOS = [
    _compressed(load(path), n) for n, path in enumerate(sorted(SCENARIO_DIR.glob("*.toml")))
]


@dataclass
class Simulated:
    services: Services
    truth: dict[str, Any]

    def scenario(self, name: str) -> dict[str, Any]:
        return next(s for s in self.truth["scenarios"] if s["name"] == name)


def _simulate(home: Path, url: str | None) -> Iterator[Simulated]:
    settings = make_settings(home, url, incident_segment_entries=256)
    clock = start_clock(START)
    services = build_services(settings, create_keys=True, migrate=True, clock=clock)
    try:
        request = RunRequest(START, 2, 40, 5, SCENARIOS, home / "run", visit_scale=40)
        prepare(services, request, home)
        run(services, clock, request)
        yield Simulated(services, json.loads((home / "run" / TRUTH_FILE).read_text()))
    finally:
        services.close()


@pytest.fixture(scope="module", params=BACKENDS)
def simulated(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Simulated]:
    home = tmp_path_factory.mktemp(f"scope-{request.param}") / "home"
    if request.param == "sqlite":
        yield from _simulate(home, None)
        return
    with schema_url(request.getfixturevalue("pg_database")) as url:
        yield from _simulate(home, url)


def _after(instant: str) -> str:
    return (datetime.fromisoformat(instant) + timedelta(milliseconds=1)).isoformat()


def _window(truth: dict[str, Any]) -> tuple[str, str]:
    moments = [access["at"] for access in truth["accesses"]] + [u["at"] for u in truth["unwraps"]]
    return min(moments), _after(max(moments))


def _declare(simulated: Simulated, name: str, **compromised: Any) -> int:
    truth = simulated.scenario(name)
    since, until = _window(truth)
    case = {"title": f"scenario {name}", "since": since, "until": until, **compromised}
    return declare_case(simulated.services, OFFICER, case).incident_id


def _tier(document: dict[str, Any], tier: str) -> dict[str, set[str]]:
    return {line["patient"]: set(line["categories"]) for line in document["tiers"][tier]}


GATE = [s.name for s in SCENARIOS if s.kind == "gate"]
UNWRAP = [s.name for s in SCENARIOS if s.kind == "key-unwrap"]


def test_every_bundled_scenario_is_replayed() -> None:
    assert len(SCENARIOS) == 8 and GATE and UNWRAP == ["key-unwrap-bypass"]


@pytest.mark.parametrize("name", GATE)
def test_confirmed_tier_is_the_ground_truth_exactly(simulated: Simulated, name: str) -> None:
    truth = simulated.scenario(name)
    assert truth["patients"], f"{name} was given records"
    compromised = (
        {"sessions": truth["sessions"]}
        if truth["sessions"]
        else {"addresses": [truth["source_address"]]}
    )
    incident_id = _declare(simulated, name, **compromised)
    document = scope_document(simulated.services, incident_id, actor=OFFICER)
    expected = {p["patient_id"]: set(p["ledger_categories"]) for p in truth["patients"]}
    assert _tier(document, "confirmed") == expected
    for given in truth["patients"]:
        assert set(given["categories"]) <= expected[given["patient_id"]]
    lines = {line["patient"]: line for line in document["tiers"]["confirmed"]}
    for given in truth["patients"]:
        line = lines[given["patient_id"]]
        assert set(given["ledger_positions"]) <= set(line["evidence"])
        assert line["ledger"] == "audit"
        assert line["checkpoint"] is not None and line["checkpoint"] > max(line["evidence"])
    assert document["counts"]["people"]["confirmed"] == len(expected)


def test_an_account_declared_whole_covers_what_its_thief_was_given(simulated: Simulated) -> None:
    truth = simulated.scenario("stolen-clinician-bulk")
    incident_id = _declare(simulated, "stolen-clinician-bulk", accounts=[truth["account"]])
    confirmed = _tier(scope_document(simulated.services, incident_id), "confirmed")
    for given in truth["patients"]:
        assert set(given["ledger_categories"]) <= confirmed[given["patient_id"]]


def test_the_gate_bypass_is_in_the_decrypted_tier(simulated: Simulated) -> None:
    truth = simulated.scenario("key-unwrap-bypass")
    unwrapped = {u["patient_id"] for u in truth["unwraps"]}
    assert unwrapped
    by_process = _declare(simulated, "key-unwrap-bypass", accounts=["system:backup-agent"])
    document = scope_document(simulated.services, by_process)
    assert document["tiers"]["confirmed"] == []
    decrypted = {line["patient"]: line for line in document["tiers"]["decrypted"]}
    assert set(decrypted) == unwrapped
    positions = {u["unwrap_position"] for u in truth["unwraps"]}
    assert positions == {seq for line in decrypted.values() for seq in line["evidence"]}
    assert all(line["ledger"] == "unwrap" and line["categories"] for line in decrypted.values())
    by_host = _declare(simulated, "key-unwrap-bypass", host=True)
    host_tiers = scope_document(simulated.services, by_host)["tiers"]
    assert unwrapped <= {line["patient"] for line in host_tiers["decrypted"]}


def test_both_engines_agree_on_postgresql(simulated: Simulated) -> None:
    if simulated.services.engine.dialect.name != "postgresql":
        pytest.skip("plain SQL runs on PostgreSQL")
    truth = simulated.scenario("everything-abuse")
    incident_id = _declare(simulated, "everything-abuse", sessions=truth["sessions"])
    duck = scope_document(simulated.services, incident_id, engine="duckdb")
    sql = scope_document(simulated.services, incident_id, engine="sql")
    assert duck["incident"]["engine"] == "duckdb" and sql["incident"]["engine"] == "postgresql"
    assert duck["tiers"] == sql["tiers"]
    assert duck["changed"] == sql["changed"]
    assert sql["incident"]["changes"] == {"first_run": False, **sql["incident"]["changes"]}


@pytest.mark.parametrize("name", GATE + UNWRAP)
def test_every_line_is_proved_by_an_independent_verifier(simulated: Simulated, name: str) -> None:
    """A forensic firm's check on the simulated month's real reads and unwraps, with the
    verifier written from the RFCs in test_evidence_independent (not ledger/verifier.py):
    every confirmed or decrypted line's positions are entries of the signed tree the
    document carries, each naming that patient and the principal the incident holds
    compromised, inside the window. Entries name a patient by pseudonym (a data key's
    id is it too), lines by Patient id: without the line's ``pseudonym`` nothing in the
    evidence said whose the entries were, and no line could be checked."""
    from tests.integration.incidents.test_evidence_independent import (
        inclusion_ok,
        leaf,
        open_note,
    )

    truth = simulated.scenario(name)
    if name in UNWRAP:
        principal = "system:backup-agent"
        incident_id = _declare(simulated, name, accounts=[principal])
    else:
        principal = ""
        incident_id = (
            _declare(simulated, name, sessions=truth["sessions"])
            if truth["sessions"]
            else _declare(simulated, name, addresses=[truth["source_address"]])
        )
    document = scope_document(simulated.services, incident_id, actor=OFFICER)
    services = simulated.services
    ledgers = {"audit": services.audit_ledger, "unwrap": services.unwrap_ledger}
    since = datetime.fromisoformat(document["incident"]["since"]).timestamp() * 1e6
    until = datetime.fromisoformat(document["incident"]["until"]).timestamp() * 1e6
    lines = document["tiers"]["confirmed"] + document["tiers"]["decrypted"]
    assert lines
    for line in lines:
        ledger = ledgers[line["ledger"]]
        note = document["incident"]["checkpoints"][line["ledger"]]["note"]
        _, size, root, _ = open_note(note, ledger.checkpoints.signer.vkey.render())
        assert size == line["checkpoint"]
        for seq in line["evidence"]:
            data = ledger.store.entry(seq)
            assert data is not None
            assert inclusion_ok(seq, size, leaf(data), ledger.store.inclusion_proof(seq, size),
                                root)  # fmt: skip
            entry = json.loads(data)
            if line["ledger"] == "unwrap":
                assert entry["key_id"] == line["pseudonym"] and entry["principal"] == principal
            else:
                assert entry["patient_pseudonym"] == line["pseudonym"]
                assert entry["outcome"] == "success"
                if truth["sessions"]:
                    assert entry["session_id"] in truth["sessions"]
                else:
                    assert entry["source_address"] == truth["source_address"]
            assert since <= entry["at_us"] < until
