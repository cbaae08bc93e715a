"""Pausing Python's cyclic garbage collector while records are loaded in bulk.

A batch makes tens of thousands of containers (each record's dicts and lists, its rows,
the outcomes of its checks) that all live until the batch is written, and the next batch
is read and checked while one is written: every collection walks them again, and the
older generations with them. Collecting after each batch still cost a bulk writer 20-40
µs a record (``bench.bulk_import_stages``): the one collection a batch's end triggered
walked the next batch, already read. While paused, reference counting still frees
whatever a batch drops; the few cycles a load leaves (none of its records are cyclic:
they come from JSON; about fifty objects a batch, mostly the database driver's) wait
for a sweep every ``SWEEP_EVERY`` batches (``Sweeper``), and for the collector, which
runs again as soon as the load is done.

A sweep collects the young generations only. Everything made while the collector is
paused stays in the youngest generation until a sweep, so a sweep sees every object
the load made since the last one, and finds the cycles a batch leaves as a full
collection did (the same count, sweep by sweep, on a 1,500-patient import). What it
no longer walks is the old generation: the process's modules, FHIR models and caches,
which a load never makes garbage of, and what was in use at an earlier sweep (a cycle
that was, and is garbage since, waits for the next full collection: every
``FULL_EVERY`` sweeps, for a checking process whose collector never runs again, and
after the load). A full collection walked them all: 150-290 ms a sweep of a
1,500-patient import, 3 % of its writer's CPU, against 3-75 ms.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
#: Batches under way in this process (threads may load at once), and whether the
#: collector was running when the first of them began.
_depth = 0
_was_enabled = False
#: Batches between two sweeps in a long pause: the cycles of as many batches (a few
#: thousand objects) against one walk of what the load made meanwhile.
SWEEP_EVERY = 32
#: The oldest generation a sweep collects: the young ones, where a load's objects are.
SWEEP_GENERATION = 1
#: Every this many sweeps, a full collection: what was in use at one sweep and is
#: garbage since is not kept for the whole load.
FULL_EVERY = 8


@contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic collection inside; the collector as it was once every pause is over."""
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()


class Sweeper:
    """Inside a pause that lasts many batches: a collection of the young generations
    every ``every`` batches, so that a load of millions of records does not keep its
    cycles to the end."""

    def __init__(self, every: int | None = None) -> None:
        self.every = SWEEP_EVERY if every is None else every
        self._batches = 0
        #: Sweeps made, and the unreachable objects they found.
        self.sweeps = 0
        self.found = 0

    def batch_done(self) -> None:
        self._batches += 1
        if self._batches >= self.every:
            self._batches = 0
            self.sweeps += 1
            full = self.sweeps % FULL_EVERY == 0
            self.found += gc.collect() if full else gc.collect(SWEEP_GENERATION)
