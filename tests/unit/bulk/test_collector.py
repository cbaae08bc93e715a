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
