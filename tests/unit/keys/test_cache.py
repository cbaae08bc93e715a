"""The data-key cache: bounded in size and in age, a key gone once it is older than the
bound, whether or not anything asks for it."""

from __future__ import annotations

import time

from carevault.keys.cache import DataKeyCache


def test_cache_is_bounded_in_size_and_age() -> None:
    now = [0.0]
    cache = DataKeyCache(max_entries=2, max_age_seconds=10, clock=lambda: now[0], sweep=False)
    cache.put("a", b"A")
    cache.put("b", b"B")
    assert cache.get("a") == b"A"  # a is now the most recent
    cache.put("c", b"C")
    assert cache.get("b") is None and len(cache) == 2
    now[0] = 11
    assert cache.get("a") is None
    disabled = DataKeyCache(max_entries=0, max_age_seconds=10)
    disabled.put("a", b"A")
    assert disabled.get("a") is None


def test_age_runs_from_the_last_unwrap_not_the_last_use() -> None:
    now = [0.0]
    cache = DataKeyCache(max_entries=10, max_age_seconds=10, clock=lambda: now[0], sweep=False)
    cache.put("a", b"A")
    cache.put("b", b"B")
    now[0] = 8
    assert cache.get("b") == b"B"  # used, not unwrapped again: still aged from 0
    cache.put("a", b"A2")  # unwrapped again
    now[0] = 12
    assert cache.get("a") == b"A2"
    assert cache.get("b") is None
    now[0] = 18.5
    assert cache.get("a") is None and len(cache) == 0


def test_an_expired_key_leaves_even_when_nothing_asks_for_it() -> None:
    # An idle server: no request comes to drop the key at its next use. Looked at
    # directly (``len`` would expire keys itself).
    cache = DataKeyCache(max_entries=10, max_age_seconds=0.2)
    cache.put("a", b"A")
    time.sleep(0.05)
    cache.put("b", b"B")
    assert set(cache._entries) == {"a", "b"}
    deadline = time.monotonic() + 5
    while cache._entries and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not cache._entries
    assert cache._timer is None  # nothing held: no timer left running


def test_clearing_stops_the_timer() -> None:
    cache = DataKeyCache(max_entries=10, max_age_seconds=30)
    cache.put("a", b"A")
    timer = cache._timer
    assert timer is not None and timer.is_alive()
    cache.clear()
    timer.join(1)
    assert not timer.is_alive() and cache._timer is None and len(cache) == 0
