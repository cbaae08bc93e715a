"""``keys.anchors.AlteredRows``: rows found altered are told once a process, and only so
many of them by name."""

from __future__ import annotations

import logging

import pytest

from carevault.keys.anchors import AlteredRows


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
