"""The same seed and scenarios give the same run (SQLite): what each attacker asked and
was given, how the gate answered, and the alerts the detectors raised with their
responses, request for request. Scores compared across code changes mean something only
if a run is a function of its inputs; what is random by design (session ids, keys and
so pseudonyms, wall-clock seconds) is left out of the comparison, and the record ids
the server gave (random UUIDs) are compared by the order in which each first appears."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from carevault.detect import alerts_as_dicts
from tests.integration.sim.test_run import _simulate

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _ids_by_order(text: str, seen: dict[str, str]) -> str:
    return _UUID.sub(lambda found: seen.setdefault(found.group(), f"id{len(seen)}"), text)


def _run(home: Path) -> tuple[list[Any], list[Any]]:
    seen: dict[str, str] = {}
    runs = _simulate(home, None)
    simulated = next(runs)
    try:
        attacks = [
            (
                scenario["name"],
                scenario.get("requests"),
                [
                    (a["at"], _ids_by_order(a["request"], seen), a["status"], len(a["given"]))
                    for a in scenario.get("accesses", [])
                ],
                len(scenario.get("unwraps", [])),
            )
            for scenario in simulated.truth["scenarios"]
        ]
        alerts = [
            (
                a["detector"], a["severity"], a["account"], a["client"], a["patient_count"],
                a["raised_at"], a["action"], a["first_position"], a["last_position"],
            )
            for a in alerts_as_dicts(simulated.services)
        ]  # fmt: skip
        return attacks, alerts
    finally:
        runs.close()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_same_seed_gives_the_same_run(backend: str, tmp_path: Path) -> None:
    first = _run(tmp_path / "one" / "home")
    second = _run(tmp_path / "two" / "home")
    assert first[0] and any(accesses for _, _, accesses, _ in first[0])
    assert first == second
