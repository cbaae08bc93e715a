"""Sliding windows kept in memory: distinct keys and plain counts over the last span.

Each addition costs amortised O(1): entries leave the window in the order they came.
They are rebuilt from the ledger on restart (see ``engine``), so they are never stored.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection


class DistinctWindow:
    """Distinct keys (patients) seen in the last ``span_us``, with the ledger positions
    that show them."""

    def __init__(self, span_us: int) -> None:
        self.span_us = span_us
        self._last: dict[str, int] = {}
        self._order: deque[tuple[int, str, int]] = deque()
        #: Bumped whenever the set of keys changes (a key comes in or leaves): the same
        #: number means the same keys as when it was last read.
        self.changes = 0

    def add(self, key: str, at_us: int, position: int) -> int:
        if key not in self._last:
            self.changes += 1
        self._last[key] = at_us
        self._order.append((at_us, key, position))
        self.expire(at_us)
        return len(self._last)

    def expire(self, now_us: int) -> None:
        edge = now_us - self.span_us
        while self._order and self._order[0][0] <= edge:
            at, key, _ = self._order.popleft()
            if self._last.get(key) == at:
                del self._last[key]
                self.changes += 1

    def __len__(self) -> int:
        return len(self._last)

    @property
    def keys(self) -> list[str]:
        return list(self._last)

    @property
    def members(self) -> Collection[str]:
        """The keys, as a live view (no copy: a caller that keeps them copies them)."""
        return self._last.keys()

    @property
    def first_position(self) -> int | None:
        return self._order[0][2] if self._order else None


class CountWindow:
    """How many events in the last ``span_us``."""

    def __init__(self, span_us: int) -> None:
        self.span_us = span_us
        self._times: deque[tuple[int, int]] = deque()

    def add(self, at_us: int, position: int) -> int:
        self._times.append((at_us, position))
        edge = at_us - self.span_us
        while self._times and self._times[0][0] <= edge:
            self._times.popleft()
        return len(self._times)

    def __len__(self) -> int:
        return len(self._times)

    @property
    def first_position(self) -> int | None:
        return self._times[0][1] if self._times else None
