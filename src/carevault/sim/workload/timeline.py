"""Simulated time: a clock the services read, and a timeline of activities that wait on it.

An activity is a generator that does one step of work and yields how many seconds it
waits before its next step (a clinician reading a chart, then writing the encounter
ten minutes later). The timeline runs every step in order of simulated time, so the
work of the whole group interleaves as it would on a live server; each step sets the
clock first, so every ledger entry it causes carries its simulated moment.
"""

from __future__ import annotations

import heapq
from collections.abc import Generator
from datetime import datetime, timedelta

#: One step of work, then the seconds until the next step.
Activity = Generator[float, None, None]


class SimClock:
    """The injectable clock (``carevault.clock.Clock``) of a simulated run."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("the simulated clock needs an aware datetime")
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def set(self, moment: datetime) -> None:
        # Never backwards: ledger entries are appended in time order.
        self.now = max(self.now, moment)


class Timeline:
    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self._queue: list[tuple[datetime, int, Activity]] = []
        self._order = 0
        self.steps = 0

    def start(self, at: datetime, activity: Activity) -> None:
        self._order += 1
        heapq.heappush(self._queue, (at, self._order, activity))

    def run_until(self, end: datetime) -> None:
        """Every step due before ``end``; the clock is left at ``end``."""
        while self._queue and self._queue[0][0] < end:
            at, _, activity = heapq.heappop(self._queue)
            self.clock.set(at)
            try:
                wait = next(activity)
            except StopIteration:
                continue
            self.steps += 1
            self.start(self.clock.now + timedelta(seconds=max(wait, 0.001)), activity)
        self.clock.set(end)
