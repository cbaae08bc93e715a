"""What a checking process sends back (bulk/checking.py)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import carevault
from carevault.bulk.checking import Checker, _sendable, outcome, received, verdict
from carevault.bulk.shape import Shapes
from carevault.bulk.sources import bundles_to_ndjson, read_again, read_items
from carevault.domain.categories import DataCategory
from carevault.fhir.content import DEFAULT_LIMITS
from carevault.fhir.derived import Derived, derive
from carevault.fhir.registry import RESOURCE_TYPES
from tests.support.synthea import BUNDLES

ZONE = ZoneInfo("Asia/Hong_Kong")


def test_outcomes_cross_as_plain_tuples_and_read_back_as_worked_out(tmp_path: Path) -> None:
    files = bundles_to_ndjson(BUNDLES, tmp_path)
    resources = [item.resource for path in files for item in read_items(path, "x")]
    assert len(resources) > 200
    seen: set[DataCategory] = set()
    for resource in resources:
        assert resource is not None
        worked_out = derive(RESOURCE_TYPES[resource["resourceType"]], resource, ZONE)
        sent = pickle.dumps(_sendable(worked_out), protocol=pickle.HIGHEST_PROTOCOL)
        # Nothing of CareVault's is named in what crosses: no class to import and call.
        assert b"carevault" not in sent
        back = received(pickle.loads(sent))  # noqa: S301 - our own bytes, just made
        assert isinstance(back, Derived)
        assert back == worked_out
        assert all(isinstance(category, DataCategory) for category in back.categories)
        seen |= back.categories
    assert {DataCategory.CLINICAL, DataCategory.IDENTITY} <= seen


def test_a_refusal_crosses_as_its_reason() -> None:
    assert _sendable("birthDate: not a date") == "birthDate: not a date"
    assert received("birthDate: not a date") == "birthDate: not a date"


def test_an_import_refuses_a_patient_in_a_directory_record_though_its_shape_is_sound() -> None:
    """The compiled check answers for shape: a record the content rules refuse (a
    patient in a directory record) is refused by an import too, as REST refuses it."""
    resource = {"resourceType": "Schedule", "id": "s1", "actor": [{"reference": "Patient/p1"}]}
    assert Shapes(DEFAULT_LIMITS).certainly_valid(resource)
    refused = verdict(resource, None, DEFAULT_LIMITS)
    assert refused is not None and refused.startswith("Schedule.actor[0]")
    assert "p1" not in refused


_HKID = {"system": "http://carevault.hk/sid/hkid", "value": "A123456(3)"}
_PASSPORT = {"type": {"coding": [{"code": "PPN"}]}, "value": "K1234567"}


@pytest.mark.parametrize(
    ("resource", "named"),
    [
        (
            {"resourceType": "Practitioner", "id": "d1", "identifier": [_HKID]},
            "Practitioner.identifier[0]",
        ),
        (
            {"resourceType": "Practitioner", "id": "d1", "identifier": [
                {"value": "D-1"}, _PASSPORT]},
            "Practitioner.identifier[1]",
        ),
        (
            {"resourceType": "Encounter", "id": "e1", "status": "finished",
             "class": {"code": "AMB"}, "subject": {"identifier": _HKID}},
            "Encounter.subject.identifier",
        ),
        (
            {"resourceType": "Patient", "id": "p1", "generalPractitioner": [
                {"identifier": _HKID}]},
            "Patient.generalPractitioner[0].identifier",
        ),
    ],
)  # fmt: skip
def test_an_import_refuses_a_government_number_outside_patient_identifier(
    resource: dict[str, Any], named: str
) -> None:
    """The compiled check keeps the government-number rule in its own walk: a record it
    breaks is not passed, and the full validation refuses it with the rule's reason (the
    element named, never the number)."""
    assert not Shapes(DEFAULT_LIMITS).certainly_valid(resource)
    refused = verdict(resource, None, DEFAULT_LIMITS)
    assert refused is not None and refused.startswith(named)
    assert "government identity number" in refused
    assert "A123456" not in refused and "K1234567" not in refused


def test_a_patients_own_government_number_passes_the_compiled_check() -> None:
    resource = {"resourceType": "Patient", "id": "p1", "identifier": [_HKID, _PASSPORT]}
    assert Shapes(DEFAULT_LIMITS).certainly_valid(resource)
    assert verdict(resource, None, DEFAULT_LIMITS) is None


def test_a_practitioners_schedule_is_imported() -> None:
    resource = {"resourceType": "Schedule", "id": "s1", "actor": [{"reference": "Practitioner/d"}]}
    assert verdict(resource, None, DEFAULT_LIMITS) is None


@pytest.mark.parametrize("compiled", [True, False])
def test_an_import_refuses_a_local_reference_to_nothing_contained(compiled: bool) -> None:
    """R4 ref-1, as the gate judges a write (a load is the system's: what it sends is what
    is stored), on both the compiled check's path and the full validation's; Synthea's
    claims, whose ``#referral`` and ``#coverage`` are contained, pass."""
    observation = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"text": "heart rate"},
        "performer": [{"reference": "#nothere"}],
    }
    refused = verdict(observation, None, DEFAULT_LIMITS, compiled)
    assert refused is not None and refused.startswith("Observation.performer[0].reference")
    assert "ref-1" in refused
    practitioner = {"resourceType": "Practitioner", "id": "nothere"}
    assert verdict({**observation, "contained": [practitioner]}, None, DEFAULT_LIMITS) is None
    claims = [
        item.resource
        for item in read_items(BUNDLES[0], "seed")
        if item.resource is not None and item.resource["resourceType"] == "ExplanationOfBenefit"
    ]
    assert claims and all("contained" in claim for claim in claims)
    assert [verdict(claim, None, DEFAULT_LIMITS, compiled) for claim in claims] == [None] * len(
        claims
    )


def test_a_line_read_off_its_bytes_is_judged_for_ref_1_with_the_hash_escaped_too() -> None:
    """A checking process tells a line with no ``#`` by its bytes; a ``#`` may be spelt
    as the escape ``\\u0023``, which the record read from the line holds as ``#``."""
    plain = (
        b'{"resourceType":"Observation","id":"o1","status":"final",'
        b'"code":{"text":"heart rate"},"performer":[{"reference":"Practitioner/p1"}]}'
    )
    escaped = plain.replace(b"Practitioner/p1", b"\\u0023nothere")
    for line, refused in ((plain, False), (escaped, True)):
        resource = read_again(line, None)
        assert resource is not None
        found = verdict(resource, None, DEFAULT_LIMITS, raw=line)
        assert (found is not None and "ref-1" in found) is refused, (line, found)


def test_the_writer_checks_a_task_no_process_has_taken_yet_itself(tmp_path: Path) -> None:
    """A task still waiting for a checking process when the writer needs it is taken
    back and checked in the writer (whose core would otherwise idle), with the outcomes
    the process would have given; tasks a process took are its to finish."""
    files = bundles_to_ndjson(BUNDLES, tmp_path)
    items = [item for path in files for item in read_items(path, "x", exact_numbers=False)]
    assert len(items) > 250
    checker = Checker(DEFAULT_LIMITS, workers=1)
    try:
        checker.wait_started()
        # Enough tasks that the last is still queued when asked for: a process takes one
        # and the pool hands it one more, the rest wait.
        tasks = [task for _ in range(12) for task in checker.submit(items, ZONE)]
        last = tasks[-1]
        found = last.result()
        assert last.taken_back
        exact = [item for path in files for item in read_items(path, "x")]
        last_task = exact[(len(tasks) // 12 - 1) * 250 :]
        assert [received(f) for f in found] == [
            outcome(item.resource, None, DEFAULT_LIMITS, ZONE) for item in last_task
        ]
        for task in tasks:
            task.cancel()
    finally:
        checker.close()


def test_tasks_made_while_the_processes_start_are_held_then_sent(tmp_path: Path) -> None:
    """A task made before any checking process has started waits here, not in the pool,
    where it could no longer be taken back: the writer checks what it needs at once
    (it waited 0.7 s so for its first batch), and what it has not taken back goes to the
    processes with the next tasks once one has started."""
    files = bundles_to_ndjson(BUNDLES, tmp_path)
    items = [item for path in files for item in read_items(path, "x", exact_numbers=False)]
    exact = [item for path in files for item in read_items(path, "x")]
    expected = [outcome(item.resource, None, DEFAULT_LIMITS, ZONE) for item in exact[:500]]
    checker = Checker(DEFAULT_LIMITS, workers=1)
    try:
        # A spawned process takes far longer to start than this takes to ask.
        first, second = checker.submit(items[:500], ZONE)
        assert checker._started is not None and not checker._started.done()
        assert not first._future.running() and not second._future.running()
        assert [received(found) for found in first.result()] == expected[:250]
        assert first.taken_back
        held = second._future
        checker.wait_started()
        [third] = checker.submit(items[:10], ZONE)
        # Sent with the next task, under the pool's own future.
        assert second._future is not held and held.running()
        assert [received(found) for found in second.result()] == expected[250:]
        assert len(third.result()) == 10
    finally:
        checker.close()


def test_a_held_task_not_wanted_is_never_sent(tmp_path: Path) -> None:
    """A task cancelled while held (a load stopped early) is not sent when a process
    has started, and closing the checker cancels what it still holds."""
    files = bundles_to_ndjson(BUNDLES[:1], tmp_path)
    items = [item for path in files for item in read_items(path, "x", exact_numbers=False)]
    checker = Checker(DEFAULT_LIMITS, workers=1)
    try:
        [dropped] = checker.submit(items[:5], ZONE)
        [kept] = checker.submit(items[5:10], ZONE)
        dropped.cancel()
        held = kept._future
        checker.wait_started()
        checker.submit(items[10:12], ZONE)
        assert dropped._future.cancelled() and not dropped.take_back()
        assert kept._future is not held and held.running()
        assert len(kept.result()) == 5
        [left] = checker.submit(items[:3], ZONE)
    finally:
        checker.close()
    assert left._future.done()


def test_processes_no_longer_needed_are_stopped_on_close(tmp_path: Path) -> None:
    """A small import is checked whole in the writer while its checking process starts:
    closing then stops the process rather than wait for its start (half a second of a
    0.4 s import); so it does once every task sent is done, rather than wait for the
    process to wind down (0.17 s). A checker closed while a task is being checked (a
    load stopped early) shuts down in order."""
    unused = Checker(DEFAULT_LIMITS, workers=1)
    assert unused._pool is not None
    spawned = list((unused._pool._processes or {}).values())
    assert spawned and all(process.is_alive() for process in spawned)
    unused.close()
    assert not any(process.is_alive() for process in spawned)
    assert all(process.exitcode is not None and process.exitcode < 0 for process in spawned)

    files = bundles_to_ndjson(BUNDLES, tmp_path)
    items = [item for path in files for item in read_items(path, "x", exact_numbers=False)]
    used = Checker(DEFAULT_LIMITS, workers=1)
    used.wait_started()
    [task] = used.submit(items[:10], ZONE)
    assert used._pool is not None
    working = list((used._pool._processes or {}).values())
    assert used._started is None
    assert len(task.result()) == 10
    # Every task sent is done (counted by the pool's thread, just after the result):
    # nothing of the processes' is wanted, and they are stopped too.
    pause = threading.Event()
    for _ in range(500):
        if used._ended == used._sent:
            break
        pause.wait(0.01)
    used.close()
    assert all(process.exitcode is not None and process.exitcode < 0 for process in working)

    busy = Checker(DEFAULT_LIMITS, workers=1)
    busy.wait_started()
    tasks = [task for _ in range(4) for task in busy.submit(items, ZONE)]
    assert busy._pool is not None
    working = list((busy._pool._processes or {}).values())
    # A load stopped early, its first task still being checked: the process finishes
    # it and leaves when told to (exit code 0).
    busy.close()
    assert [process.exitcode for process in working] == [0] * len(working)
    assert tasks[0]._future.done()


def _main_module_file() -> str | None:
    """Run in a checking process: the file its ``__main__`` came from, if any."""
    return getattr(sys.modules["__main__"], "__file__", None)


def test_a_checking_process_does_not_run_the_main_module_again(tmp_path: Path) -> None:
    """A spawned process ran the parent's main module again before its first task (the
    ``carevault`` script: the whole command line and what it imports, 0.4 s of CPU); a
    checking process needs only the checks. The parent's main module is left as it was.
    Run from a script, as ``carevault`` is (``python -m`` of a package's ``__main__`` is
    never run again)."""
    script = tmp_path / "importer.py"
    script.write_text(
        "from carevault.bulk.checking import Checker\n"
        "from carevault.fhir.content import DEFAULT_LIMITS\n"
        "from tests.unit.bulk.test_checking import _main_module_file\n"
        "import sys\n"
        "if __name__ == '__main__':\n"
        "    main = sys.modules['__main__']\n"
        "    checker = Checker(DEFAULT_LIMITS, workers=1)\n"
        "    print(sys.modules['__main__'] is main)\n"
        "    print(checker._pool.submit(_main_module_file).result(timeout=60))\n"
        "    checker.close()\n"
    )
    root = Path(__file__).resolve().parents[3]
    paths = [str(Path(carevault.__file__).resolve().parents[1]), str(root)]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    ran = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=environment,
        timeout=120, check=True,
    )  # fmt: skip
    assert ran.stdout.split() == ["True", "None"], ran.stderr[-2000:]
