"""A short-lived, bounded cache of unwrapped data keys.

Bounded in size and in age so that a memory dump of the server holds few keys
and only recent ones. Every use of a cached key still passes the gate, which
records the access in the audit ledger; only the unwrap itself is skipped.

A key leaves the cache once it is older than the age bound: at the cache's next use,
and, on a server with nothing to do, by a timer that runs only while keys are held
(at most a tenth of the bound late). Python does not overwrite the memory of an object
it frees, so this bounds which keys the cache can hand out and keeps alive, not what a
dump of freed memory might still show.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class DataKeyCache:
    def __init__(
        self,
        max_entries: int,
        max_age_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        sweep: bool = True,
    ) -> None:
        """``clock``: seconds, never going back. ``sweep``: whether a timer takes keys
        out as they expire even when nothing uses the cache (off for a test's clock)."""
        self._max_entries = max_entries
        self._max_age = max_age_seconds
        self._clock = clock
        self._sweep = sweep
        # By last use (the size bound drops the least recently used).
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        # (stored at, key id) in the order stored, so the oldest come off the front; an
        # item whose key was stored again since, or dropped, is passed over.
        self._stored: deque[tuple[float, str]] = deque()
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

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
            self._stored.append((now, key_id))
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
            # A timer that is not running (none yet, or not in this forked process).
            if self._sweep and (self._timer is None or not self._timer.is_alive()):
                self._start_timer(now)

    def discard(self, key_id: str) -> None:
        with self._lock:
            self._entries.pop(key_id, None)

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
        stored, entries = self._stored, self._entries
        while stored and now - stored[0][0] > self._max_age:
            stored_at, key_id = stored.popleft()
            found = entries.get(key_id)
            if found is not None and found[0] == stored_at:
                del entries[key_id]
        if not entries:
            stored.clear()

    def _start_timer(self, now: float) -> None:
        """Under the lock: a timer for when the oldest key expires, never sooner than a
        tenth of the age bound (a cache in steady use would otherwise wake it constantly)."""
        due = self._stored[0][0] + self._max_age - now if self._stored else self._max_age
        timer = threading.Timer(max(due, self._max_age / 10) + 0.01, self._on_timer)
        timer.daemon = True
        self._timer = timer
        timer.start()

    def _on_timer(self) -> None:
        with self._lock:
            if self._timer is not threading.current_thread():
                return  # cancelled, or replaced
            self._timer = None
            now = self._clock()
            self._expire(now)
            if self._entries:
                self._start_timer(now)
