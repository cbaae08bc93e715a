"""Pausing Python's cyclic garbage collector while a batch of records is worked on.

A batch makes tens of thousands of containers (each record's dicts and lists, its rows,
the outcomes of its checks) that all live until the batch is written: every collection
their allocation triggers walks them again, and the older generations with them. That
cost a fifth to a third of a bulk writer's CPU (``bench.bulk_import``). While paused,
reference counting still frees whatever a batch drops; the few cycles a batch leaves
(none of its records are cyclic: they come from JSON) wait for the collector, which runs
again as soon as the batch is done.
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


@contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic collection inside; the collector as it was once every batch is done."""
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
