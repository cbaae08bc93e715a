"""A short-lived, bounded cache of unwrapped data keys.

Bounded in size and in age so that a memory dump of the server holds few keys
and only recent ones. Every use of a cached key still passes the gate, which
records the access in the audit ledger; only the unwrap itself is skipped.

A key leaves the cache once it is older than the age bound (counted from its unwrap or
creation, however often it is used meanwhile): at the cache's next use, and, on a
server with nothing to do, by a timer that runs only while keys are held (at most a
tenth of the bound late, and never more often than twice a second). A forked child
starts with an empty cache: it unwraps, and so logs, what it needs itself. Python does
not overwrite the memory of an object it frees, so this bounds which keys the cache can
hand out and keeps alive, not what a dump of freed memory might still show.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable

log = logging.getLogger(__name__)

#: The timer's shortest wait, whatever the bound (a tiny one would wake it constantly).
MIN_SWEEP_SECONDS = 0.5


class DataKeyCache:
    def __init__(
        self,
        max_entries: int,
        max_age_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        sweep: bool | None = None,
    ) -> None:
        """``clock``: seconds, never going back. ``sweep``: whether a timer takes keys
        out as they expire even when nothing uses the cache (by default, only on the
        real clock: a timer runs on real time)."""
        self._max_entries = max_entries
        self._max_age = max_age_seconds
        self._clock = clock
        self._sweep = clock is time.monotonic if sweep is None else sweep
        # By last use (the size bound drops the least recently used) ...
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        # ... and the same keys by when they were stored, oldest first (the age bound).
        self._stored: OrderedDict[str, float] = OrderedDict()
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        _CACHES.add(self)

    def get(self, key_id: str) -> bytes | None:
        with self._lock:
            self._expire(self._clock())
            found = self._entries.get(key_id)
            if found is None:
                return None
            self._entries.move_to_end(key_id)
            return found[1]

    def put(self, key_id: str, key: bytes) -> None:
        if self._max_entries == 0 or self._max_age == 0:
            return
        with self._lock:
            now = self._clock()
            self._expire(now)
            self._entries[key_id] = (now, key)
            self._entries.move_to_end(key_id)
            self._stored.pop(key_id, None)
            self._stored[key_id] = now
            while len(self._entries) > self._max_entries:
                evicted, _ = self._entries.popitem(last=False)
                del self._stored[evicted]
            if self._sweep and self._timer is None:
                self._start_timer(now)

    def discard(self, key_id: str) -> None:
        with self._lock:
            self._entries.pop(key_id, None)
            self._stored.pop(key_id, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._stored.clear()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def __len__(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._entries)

    def _expire(self, now: float) -> None:
        """Under the lock: drop every key stored more than the age bound before ``now``."""
        stored = self._stored
        while stored:
            key_id, stored_at = next(iter(stored.items()))
            if now - stored_at <= self._max_age:
                return
            del stored[key_id]
            del self._entries[key_id]

    def _start_timer(self, now: float) -> None:
        """Under the lock: a timer for when the oldest key expires (or a tenth of the
        bound from now, if that is later: a cache in steady use would wake it constantly)."""
        oldest = next(iter(self._stored.values()), now)
        due = max(oldest + self._max_age - now, self._max_age / 10, MIN_SWEEP_SECONDS)
        timer = threading.Timer(due, self._on_timer)
        timer.name = "data-key-cache-sweep"
        timer.daemon = True
        try:
            timer.start()
        except RuntimeError:
            # No thread to be had (a limit reached, or the interpreter shutting down):
            # keys still expire at the cache's next use.
            log.warning("the data-key cache's expiry timer could not start", exc_info=True)
            return
        self._timer = timer

    def _on_timer(self) -> None:
        with self._lock:
            if self._timer is not threading.current_thread():
                return  # cancelled, or replaced
            self._timer = None
            now = self._clock()
            self._expire(now)
            if self._entries:
                self._start_timer(now)

    def _forget(self) -> None:
        """In a forked child: no inherited keys, lock or timer (the parent's timer thread
        does not exist here, and its lock may have been held at the fork)."""
        self._lock = threading.Lock()
        self._entries = OrderedDict()
        self._stored = OrderedDict()
        self._timer = None


#: Every cache of the process, for the fork hook (weakly: a closed service's cache goes).
_CACHES: weakref.WeakSet[DataKeyCache] = weakref.WeakSet()


def _forget_all() -> None:
    for cache in list(_CACHES):
        cache._forget()


os.register_at_fork(after_in_child=_forget_all)
