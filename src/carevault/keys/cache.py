"""A short-lived, bounded cache of unwrapped data keys.

Bounded in size and in age so that a memory dump of the server holds few keys
and only recent ones. Every use of a cached key still passes the gate, which
records the access in the audit ledger; only the unwrap itself is skipped.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class DataKeyCache:
    def __init__(
        self,
        max_entries: int,
        max_age_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_entries = max_entries
        self._max_age = max_age_seconds
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key_id: str) -> bytes | None:
        with self._lock:
            found = self._entries.get(key_id)
            if found is None:
                return None
            stored_at, key = found
            if self._clock() - stored_at > self._max_age:
                del self._entries[key_id]
                return None
            self._entries.move_to_end(key_id)
            return key

    def put(self, key_id: str, key: bytes) -> None:
        if self._max_entries == 0 or self._max_age == 0:
            return
        with self._lock:
            self._entries[key_id] = (self._clock(), key)
            self._entries.move_to_end(key_id)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def discard(self, key_id: str) -> None:
        with self._lock:
            self._entries.pop(key_id, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
