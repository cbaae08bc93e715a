"""How the writer collects a batch's checks (bulk/loader.py)."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from carevault.bulk.checking import Checks, _sent, outcome
from carevault.bulk.loader import _collect
from carevault.bulk.sources import bundles_to_ndjson, read_items
from carevault.fhir.content import DEFAULT_LIMITS
from tests.support.synthea import BUNDLES

ZONE = ZoneInfo("Asia/Hong_Kong")


def test_the_writer_checks_a_batchs_last_tasks_while_a_process_checks_its_first(
    tmp_path: Path,
) -> None:
    """A process working on a batch's first task: the writer takes the tasks no process
    has reached from the batch's end and checks them, rather than wait for the first
    (collected in order, it waited for each task a process had taken)."""
    files = bundles_to_ndjson(BUNDLES[:1], tmp_path)
    items = [item for path in files for item in read_items(path, "x", exact_numbers=False)]
    chunks = [items[0:4], items[4:8], items[8:12]]
    arguments = [
        ([_sent(item) for item in chunk], DEFAULT_LIMITS, ZONE, True, True) for chunk in chunks
    ]
    running: Future[Any] = Future()
    assert running.set_running_or_notify_cancel()
    tasks = [Checks(running, arguments[0]), Checks.held(arguments[1]), Checks.held(arguments[2])]
    seen: list[bool] = []

    def process_finishes() -> None:
        # The process's task is done once the writer has taken back the rest, or after
        # five seconds: what the writer had done by then is what is judged.
        pause = threading.Event()
        for _ in range(500):
            if tasks[1].taken_back and tasks[2].taken_back:
                break
            pause.wait(0.01)
        seen.append(tasks[1].taken_back and tasks[2].taken_back)
        running.set_result(
            [outcome(item.resource, None, DEFAULT_LIMITS, ZONE) for item in chunks[0]]
        )

    process = threading.Thread(target=process_finishes)
    process.start()
    found = list(_collect(tasks))
    process.join()
    assert seen[-1], "the writer waited for the process's task before taking back the rest"
    assert not tasks[0].taken_back
    exact = [item for path in files for item in read_items(path, "x")][:12]
    assert found == [outcome(item.resource, None, DEFAULT_LIMITS, ZONE) for item in exact]
