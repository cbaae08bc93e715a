"""The collector pause around a bulk batch (bulk/collector.py)."""

from __future__ import annotations

import gc

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
