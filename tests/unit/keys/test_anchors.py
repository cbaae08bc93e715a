"""``keys.anchors.AlteredRows``: rows found altered are told once a process, and only so
many of them by name."""

from __future__ import annotations

import logging

import pytest

from carevault.keys.anchors import AlteredRows


def test_rows_past_the_limit_are_not_told_one_by_one(caplog: pytest.LogCaptureFixture) -> None:
    """An insider inserting rows by the million makes one line each for the first, one
    line for the rest, not a million, and the names kept are bounded."""
    told: list[str] = []
    rows = AlteredRows(logging.getLogger("carevault.test"), "registration", "nowhere")
    rows.LIMIT = 3
    rows.record = told.append
    with caplog.at_level(logging.ERROR, logger="carevault.test"):
        for name in ["a", "b", "a", "c", "d", "e", "b"]:
            rows.tell(name)
    assert told == ["a", "b", "c"]
    assert len(rows._told) == 3
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "registration a was altered in the database: nowhere",
        "registration b was altered in the database: nowhere",
        "registration c was altered in the database: nowhere",
        "more than 3 registrations were altered in the database: the rest are not told",
    ]
