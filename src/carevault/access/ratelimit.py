"""Request rate limits: token buckets per key, kept in this server process.

A bucket holds up to ``burst`` requests and refills at ``rate`` per second; a
request takes one or is told how long until one is there (the ``Retry-After`` of
its 429). The state is per process (shared state would cost a database write per
request): with N server processes a key gets up to N times the rate. Sign-in
throttling, which safety depends on, is in the database (``throttle``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from carevault.config import Settings

Monotonic = Callable[[], float]


class TokenBuckets:
    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_keys: int = 100_000,
        monotonic: Monotonic = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        self.monotonic = monotonic
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> int:
        """0 if the request may go ahead (and takes a token); otherwise the whole seconds
        to wait before asking again."""
        now = self.monotonic()
        with self._lock:
            tokens, then = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                if len(self._buckets) > self.max_keys:
                    self._forget_full(now)
                return 0
            self._buckets[key] = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) / self.rate))

    def _forget_full(self, now: float) -> None:
        """Drop the buckets that have refilled: forgetting them changes nothing."""
        refilled = [
            key
            for key, (tokens, then) in self._buckets.items()
            if tokens + (now - then) * self.rate >= self.burst
        ]
        for key in refilled:
            del self._buckets[key]
        if len(self._buckets) > self.max_keys:
            # Still too many live keys: start afresh rather than grow without bound.
            self._buckets.clear()


@dataclass(frozen=True)
class RequestLimits:
    """The limits a server process applies; None where a setting turns one off."""

    source: TokenBuckets | None
    account: TokenBuckets | None
    sign_in: TokenBuckets | None

    @classmethod
    def from_settings(cls, settings: Settings) -> RequestLimits:
        def buckets(rate: float, burst: int) -> TokenBuckets | None:
            return TokenBuckets(rate, burst) if rate > 0 else None

        return cls(
            source=buckets(settings.rate_limit_source_per_second, settings.rate_limit_source_burst),
            account=buckets(
                settings.rate_limit_account_per_second, settings.rate_limit_account_burst
            ),
            sign_in=buckets(
                settings.rate_limit_sign_in_per_second, settings.rate_limit_sign_in_burst
            ),
        )
