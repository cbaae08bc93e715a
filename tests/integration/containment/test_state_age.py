"""How old the containment state a process obeys may be: at most ``refresh_seconds``
counted from when it was read, not from when the read came back, and never older than a
mode this process started. A read of the state that is slow to come back (the database
busy, a pool waited for) is simulated by holding it after its statement ran, that is
after its snapshot was taken. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event

from carevault.bootstrap import Services
from carevault.containment.state import ContainmentStore, Mode

REFRESH = 0.5


@contextmanager
def held_state_reads(engine: Engine, hold: Callable[[], None]) -> Iterator[None]:
    """Within: the first read of the containment table by the thread that enters runs
    ``hold`` once its statement has run (its snapshot taken), before its rows are used."""
    owner, done = threading.get_ident(), threading.Event()

    def after(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        mine = threading.get_ident() == owner and "FROM containment" in statement
        if mine and not done.is_set():
            done.set()
            hold()

    event.listen(engine, "after_cursor_execute", after)
    try:
        yield
    finally:
        event.remove(engine, "after_cursor_execute", after)


def test_a_slow_read_of_the_state_is_as_old_as_its_snapshot(services: Services) -> None:
    """Hole: the state was kept for ``refresh_seconds`` from when its read came back. A
    read that took a second kept a state from before PHI-offline for a second and a half
    after the mode started in another process, beyond the documented half second."""
    store = ContainmentStore(services.engine, services.now_us, REFRESH)
    other_process = ContainmentStore(services.engine, services.now_us, REFRESH)
    started = threading.Event()

    def hold() -> None:
        starter = threading.Thread(
            target=lambda: other_process.start(Mode.PHI_OFFLINE, None, "drill", "staff:test")
        )
        starter.start()
        starter.join(10)
        started.set()
        time.sleep(1.0)

    with held_state_reads(services.engine, hold):
        assert not store.current().phi_offline  # read before the mode started
    assert started.is_set()
    # The mode started a second ago: the state read before it is past its half second.
    assert store.current().phi_offline


def test_a_mode_started_in_this_process_holds_at_once_despite_a_read_under_way(
    services: Services,
) -> None:
    """Hole: a mode started while another thread of the process was reading the state
    was not obeyed: that read (from before the mode) came back after the start asked
    for a fresh one, and was then taken as fresh, for another half second."""
    store = ContainmentStore(services.engine, services.now_us, REFRESH)
    snapshot_taken, mode_started = threading.Event(), threading.Event()

    def hold() -> None:
        snapshot_taken.set()
        mode_started.wait(10)
        time.sleep(0.1)  # the start's own read is waiting for this one

    def read_under_way() -> None:
        with held_state_reads(services.engine, hold):
            store.current()

    reader = threading.Thread(target=read_under_way)
    reader.start()
    assert snapshot_taken.wait(10)
    starter = threading.Thread(
        target=lambda: store.start(Mode.PHI_OFFLINE, None, "drill", "staff:test")
    )
    # The start commits, then waits for the read under way before reading again.
    starter.start()
    deadline = time.monotonic() + 10
    while not store.history(1) and time.monotonic() < deadline:
        time.sleep(0.01)
    mode_started.set()
    reader.join(10)
    starter.join(10)
    assert store.current().phi_offline
