"""Kick-offs racing for one client (exports and ``$import`` jobs share the rule)."""

from __future__ import annotations

import threading
from typing import Any

from carevault.jobs import LeasedJobs


def assert_one_of_racing_kick_offs_stored(
    store: LeasedJobs[Any], row: dict[str, Any], racers: int = 6
) -> None:
    """``racers`` threads store ``row`` (as jobs of its client) at once through
    ``create_unless_busy``: exactly one is stored, and every other is told its id."""
    assert set(row) | {"job_id", "key_id"} <= {c.name for c in store.table.columns}
    outcomes: list[str | None] = []
    start = threading.Barrier(racers)

    def race(n: int) -> None:
        start.wait()
        outcomes.append(store.create_unless_busy({**row, "job_id": f"race{n}", "key_id": f"k{n}"}))

    threads = [threading.Thread(target=race, args=(n,)) for n in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stored = [job.job_id for job in store.all() if job.client_id == row["client_id"]]
    assert len(stored) == 1
    assert outcomes.count(None) == 1
    assert all(outcome == stored[0] for outcome in outcomes if outcome is not None)
