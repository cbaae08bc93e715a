"""Token buckets, on a clock the test moves."""

from __future__ import annotations

from dataclasses import dataclass

from carevault.access.ratelimit import RequestLimits, TokenBuckets
from carevault.config import Settings


@dataclass
class Ticks:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_steady_rate_then_a_wait_to_retry_after() -> None:
    ticks = Ticks()
    buckets = TokenBuckets(rate=2.0, burst=5, monotonic=ticks)

    assert [buckets.take("203.0.113.9") for _ in range(5)] == [0] * 5
    assert buckets.take("203.0.113.9") == 1  # empty: half a second to the next, said as 1
    ticks.now += 0.5
    assert buckets.take("203.0.113.9") == 0
    assert buckets.take("203.0.113.9") == 1
    # Another key has its own bucket.
    assert buckets.take("198.51.100.7") == 0


def test_a_slow_rate_says_how_many_seconds_to_wait() -> None:
    ticks = Ticks()
    buckets = TokenBuckets(rate=0.1, burst=1, monotonic=ticks)

    assert buckets.take("a") == 0
    assert buckets.take("a") == 10
    ticks.now += 4
    assert buckets.take("a") == 6


def test_refilled_buckets_are_forgotten_so_memory_stays_bounded() -> None:
    ticks = Ticks()
    buckets = TokenBuckets(rate=1.0, burst=2, max_keys=100, monotonic=ticks)
    for number in range(100):
        buckets.take(f"old-{number}")
    ticks.now += 10
    for number in range(50):
        buckets.take(f"new-{number}")

    assert len(buckets._buckets) <= 100


def test_a_rate_of_zero_turns_a_limit_off() -> None:
    limits = RequestLimits.from_settings(
        Settings(rate_limit_account_per_second=0, rate_limit_source_per_second=5)
    )

    assert limits.account is None
    assert limits.source is not None and limits.source.rate == 5
    assert limits.sign_in is not None
