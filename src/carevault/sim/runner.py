"""``carevault sim run`` without the command line: seed (once), run, write the results.

A run's files, next to each other in its output folder:

* ``run.json``: what was run (start, days, seed, patients), the look-alikes scheduled,
  and figures per day (visits, requests, ledger entries, wall seconds);
* ``ground-truth.json``: per scenario, every record its attacker was given (see
  ``carevault.sim.attack.truth`` and docs/simulation.md).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from carevault.bootstrap import Services
from carevault.sim.attack.attacker import Attacker
from carevault.sim.attack.spec import Scenario, check_dates
from carevault.sim.elements import at
from carevault.sim.loader import already_seeded, seed_clinic_group
from carevault.sim.workload.run import DayFigures, Simulation
from carevault.sim.workload.timeline import SimClock
from carevault.sim.workload.world import build_world

MARKER = "sim-world.json"
RUN_FILE = "run.json"
TRUTH_FILE = "ground-truth.json"


@dataclass(frozen=True)
class RunRequest:
    start: date
    days: int
    patients: int
    seed: int
    scenarios: Sequence[Scenario]
    out: Path
    #: Visits relative to what the seeded history gives (small test groups need more).
    visit_scale: float = 1.0


def start_clock(start: date) -> SimClock:
    """The run's clock, set to the evening before the first day (when seeding happens)."""
    return SimClock(at(start - timedelta(days=1), datetime.min.time()) + timedelta(hours=20))


def prepare(services: Services, request: RunRequest, home: Path) -> str:
    """Seed the home for the run, or check that it was seeded for this one."""
    marker = home / MARKER
    if (request.out / RUN_FILE).exists():
        raise ValueError(
            f"{request.out} already holds a run, and the run changed the home's records: "
            "use a new --home (or --out, to run on top of it knowingly)"
        )
    wanted = {"seed": request.seed, "patients": request.patients, "today": str(request.start)}
    if marker.exists():
        found = json.loads(marker.read_text())
        if found != wanted:
            raise ValueError(
                f"{home} was seeded for {found}, not {wanted}: use the same --seed, --patients "
                "and --start, or a new --home"
            )
        return "reused"
    if already_seeded(services):
        raise ValueError(f"{home} holds data not seeded by 'carevault sim run': use a new --home")
    seed_clinic_group(
        services, patients=request.patients, seed=request.seed, today=request.start, progress=True
    )
    marker.write_text(json.dumps(wanted) + "\n")
    return "seeded"


def run(
    services: Services,
    clock: SimClock,
    request: RunRequest,
    progress: Callable[[DayFigures], None] | None = None,
) -> dict[str, Any]:
    for scenario in request.scenarios:
        check_dates(scenario, request.start, request.days)
    wall = time.perf_counter()
    world = build_world(request.seed, request.patients, request.start)
    attackers = [Attacker(scenario, wall) for scenario in request.scenarios]
    simulation = Simulation(
        services,
        world,
        clock,
        request.start,
        request.days,
        request.seed,
        attackers,
        request.visit_scale,
        progress,
    )
    simulation.run()
    summary = simulation.summary()
    summary["wall_seconds_world"] = round(time.perf_counter() - wall - summary["wall_seconds"], 1)
    truth = {
        "run": {key: summary[key] for key in ("start", "days", "seed", "patients", "clinics")},
        "scenarios": [
            {
                "name": attacker.name,
                "description": attacker.scenario.description,
                "kind": attacker.scenario.kind,
                "source": attacker.scenario.source,
                "method": attacker.scenario.what.method,
                "per_hour": attacker.scenario.what.per_hour,
                "per_day": attacker.scenario.what.per_day,
                # The days it was to run: one contained early is still a drip.
                "planned_days": len(attacker.scenario.when.days or attacker.scenario.when.dates),
                **(attacker.truth.as_json() if attacker.truth else {}),
            }
            for attacker in attackers
        ],
    }
    request.out.mkdir(parents=True, exist_ok=True)
    (request.out / RUN_FILE).write_text(json.dumps(summary, indent=1) + "\n")
    (request.out / TRUTH_FILE).write_text(json.dumps(truth, indent=1) + "\n")
    return summary
