"""``keys.anchors``: rows found altered are told once a process, and only so many of them
by name; a table's note is written once, however many processes finish its pass."""

from __future__ import annotations

import logging
import stat
import threading
from pathlib import Path

import pytest

from carevault.keys.anchors import AlteredRows, SealAnchors


def test_rows_past_the_limit_are_not_told_one_by_one(caplog: pytest.LogCaptureFixture) -> None:
    """An insider inserting rows by the thousand makes a line and an entry each for the
    first, then one saying there are more (the ledger hears of it too), not a thousand;
    the names kept are bounded."""
    told: list[str] = []
    rows = AlteredRows(logging.getLogger("carevault.test"), "registration", "nowhere")
    rows.LIMIT = 3
    rows.record = told.append
    with caplog.at_level(logging.ERROR, logger="carevault.test"):
        for name in ["a", "b", "a", "c", "d", "e", "b"]:
            rows.tell(name)
    assert told == ["a", "b", "c", "beyond the first 3"]
    assert len(rows._told) == 3
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "registration a was altered in the database: nowhere",
        "registration b was altered in the database: nowhere",
        "registration c was altered in the database: nowhere",
        "registration beyond the first 3 was altered in the database: nowhere",
    ]


def test_a_name_cannot_forge_a_line(caplog: pytest.LogCaptureFixture) -> None:
    """A clinic id written in the database with a line break in it (PostgreSQL takes
    one) would have forged a log line, and a line of the alert's mail."""
    told: list[str] = []
    rows = AlteredRows(logging.getLogger("carevault.test"), "registration", "nowhere")
    rows.record = told.append
    forged = "x@tm\n2026-12-06T17:00:00.000Z INFO carevault.access all clear\r" + "y" * 500
    with caplog.at_level(logging.ERROR, logger="carevault.test"):
        rows.tell(forged)
    (line,) = [record.getMessage() for record in caplog.records]
    assert "\n" not in line and "\r" not in line and "x@tm?2026-12-06" in line
    (shown,) = told
    assert "\n" not in shown and len(shown) == AlteredRows.SHOWN


def test_a_note_finished_by_several_processes_at_once_is_written_once(tmp_path: Path) -> None:
    """Review of stop 66: servers started at once after an upgrade (``serve --workers
    N``, the detector beside them) each finish a pass and note it; each appended its
    line, and the runbook's repair ("delete that line and start once more") left the
    note held. Eight writers released together leave one line."""
    anchors = SealAnchors(tmp_path / "keys" / "sealed-tables")
    anchors.add("care_relationship")
    together = threading.Barrier(8, timeout=10)

    def note() -> None:
        together.wait()
        anchors.add("care-client-marks")

    writers = [threading.Thread(target=note) for _ in range(8)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert anchors.path.read_text().splitlines() == ["care_relationship", "care-client-marks"]
    assert stat.S_IMODE(anchors.path.stat().st_mode) == 0o600
