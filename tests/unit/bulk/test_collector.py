"""The collector pause around a bulk batch (bulk/collector.py)."""

from __future__ import annotations

import gc

import pytest

from carevault.bulk.collector import collector_paused


def test_collector_is_paused_inside_and_running_again_after() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        # The outer batch is still under way.
        assert not gc.isenabled()
    assert gc.isenabled()


def test_collector_runs_again_when_a_batch_fails() -> None:
    try:
        with collector_paused():
            raise ValueError("refused")
    except ValueError:
        pass
    assert gc.isenabled()


def test_a_collector_stopped_before_stays_stopped() -> None:
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_long_pause_sweeps_its_cycles_every_few_batches() -> None:
    from carevault.bulk.collector import Sweeper

    class Cyclic:
        def __init__(self) -> None:
            self.me = self

    sweeper = Sweeper(every=3)
    with collector_paused():
        gc.collect()
        for batch in range(1, 7):
            for _ in range(100):
                Cyclic()
            sweeper.batch_done()
            assert not gc.isenabled()
            # Swept after the third and the sixth batch, each time the cycles made since.
            assert sweeper.sweeps == batch // 3
        assert sweeper.found >= 200
    assert gc.isenabled()


def test_a_sweep_walks_the_young_generations_and_every_few_a_full_collection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A full collection walked the process's modules and models every sweep (150-290 ms
    of a 1,500-patient import): a sweep collects where a load's objects are, the young
    generations, and a full collection comes every ``FULL_EVERY`` sweeps."""
    from carevault.bulk import collector

    monkeypatch.setattr(collector, "FULL_EVERY", 3)
    asked: list[tuple[int, ...]] = []
    real_collect = gc.collect

    def counted(*generation: int) -> int:
        asked.append(generation)
        return real_collect(*generation)

    monkeypatch.setattr(gc, "collect", counted)
    sweeper = collector.Sweeper(every=1)
    with collector_paused():
        for _ in range(6):
            sweeper.batch_done()
    young = (collector.SWEEP_GENERATION,)
    assert asked == [young, young, (), young, young, ()]
    assert collector.SWEEP_GENERATION < 2
