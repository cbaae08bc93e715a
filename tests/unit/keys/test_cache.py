"""The data-key cache: bounded in size and in age, a key gone once it is older than the
bound, whether or not anything asks for it."""

from __future__ import annotations

import os
import threading
import time
import warnings

from carevault.keys.cache import DataKeyCache


def test_cache_is_bounded_in_size_and_age() -> None:
    now = [0.0]
    cache = DataKeyCache(max_entries=2, max_age_seconds=10, clock=lambda: now[0])
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
    cache = DataKeyCache(max_entries=10, max_age_seconds=10, clock=lambda: now[0])
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
    cache = DataKeyCache(max_entries=10, max_age_seconds=1.0)
    cache.put("a", b"A")
    cache.put("b", b"B")
    assert set(cache._entries) == {"a", "b"}
    deadline = time.monotonic() + 10
    while cache._entries and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not cache._entries and not cache._stored
    assert cache._timer is None  # nothing held: no timer left running


def test_keys_pushed_out_by_size_leave_nothing_behind() -> None:
    # The age order holds the cache's keys and no others, however many pass through
    # (a bulk import unwraps tens of thousands of keys a minute).
    now = [0.0]
    cache = DataKeyCache(max_entries=3, max_age_seconds=3600, clock=lambda: now[0])
    for n in range(1000):
        now[0] = n / 100
        cache.put(f"k{n % 7}", bytes([n % 7]))
        assert list(cache._stored) == [key for key in cache._stored if key in cache._entries]
        assert len(cache._stored) == len(cache._entries) <= 3
    cache.discard("k5")
    assert "k5" not in cache._stored
    # Pushed out, then unwrapped again: kept, and aged from the second time.
    cache.put("k0", b"again")
    now[0] += 3599
    assert cache.get("k0") == b"again"


def test_a_forked_child_starts_with_no_keys_and_a_lock_of_its_own() -> None:
    cache = DataKeyCache(max_entries=10, max_age_seconds=30)
    cache.put("a", b"A")
    # Held by another thread at the fork: the child must not wait for it.
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with cache._lock:
            holding.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(5)
    try:
        with warnings.catch_warnings():
            # Python 3.12 warns of a fork beside other threads: that is the case tested.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child, which reports by its exit status
            if not cache._lock.acquire(timeout=2):
                os._exit(2)  # the parent's held lock, inherited
            cache._lock.release()
            ok = cache.get("a") is None and len(cache) == 0 and cache._timer is None
            cache.put("b", b"B")
            ok = ok and cache.get("b") == b"B" and cache._timer is not None
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
    finally:
        release.set()
        holder.join()
    assert os.waitstatus_to_exitcode(status) == 0
    assert cache.get("a") == b"A"  # the parent's are its own
    cache.clear()


def test_clearing_stops_the_timer() -> None:
    cache = DataKeyCache(max_entries=10, max_age_seconds=30)
    cache.put("a", b"A")
    timer = cache._timer
    assert timer is not None and timer.is_alive()
    cache.clear()
    timer.join(1)
    assert not timer.is_alive() and cache._timer is None and len(cache) == 0
