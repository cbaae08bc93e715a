"""Integrator round 70, the operator's log shipper: every line `carevault serve` logs
carries its time, level, logger and process, and with ``CAREVAULT_LOG_FORMAT=json`` is
one JSON object. It was uvicorn's own format (no time, no logger), and CareVault's own
loggers had no handler: their warnings were bare messages through Python's last-resort
handler. A logged failure still carries its type and place, never its message."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from datetime import datetime
from typing import Any

import pytest

from carevault.cli.server import uvicorn_options
from carevault.config import Settings


@contextmanager
def configured(options: dict[str, Any]) -> Iterator[io.StringIO]:
    names = ("uvicorn", "uvicorn.error", "carevault", "carevault.web")
    kept = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate,
                   logging.getLogger(name).level) for name in names}  # fmt: skip
    captured = io.StringIO()
    try:
        with redirect_stderr(captured):
            logging.config.dictConfig(options["log_config"])
            yield captured
    finally:
        for name, (handlers, propagate, level) in kept.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.propagate = propagate
            logger.setLevel(level)


def _log_a_failure() -> None:
    try:
        raise ValueError("Chan Tai Man A123456(3)")
    except ValueError:
        logging.getLogger("carevault.web").exception("a request failed")
    logging.getLogger("uvicorn.error").info("Started server process [1]")


def test_json_log_lines_carry_time_level_logger_and_no_patient_data(tmp_path: Any) -> None:
    options = uvicorn_options(Settings(home=tmp_path, log_format="json"))
    with configured(options) as captured:
        _log_a_failure()
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert [(line["logger"], line["level"]) for line in lines] == [
        ("carevault.web", "ERROR"),
        ("uvicorn.error", "INFO"),
    ]
    for line in lines:
        assert datetime.fromisoformat(line["time"]).utcoffset() is not None
        assert isinstance(line["process"], int)
    assert lines[0]["message"].startswith("a request failed [ValueError at ")
    assert "Chan" not in captured.getvalue() and "A123456" not in captured.getvalue()


def test_text_log_lines_start_with_the_time_and_name_their_logger(tmp_path: Any) -> None:
    options = uvicorn_options(Settings(home=tmp_path))
    with configured(options) as captured:
        _log_a_failure()
    lines = captured.getvalue().splitlines()
    assert len(lines) == 2
    stamp, level, logger, *_ = lines[0].split(" ")
    assert datetime.fromisoformat(stamp).utcoffset() is not None
    assert (level, logger) == ("ERROR", "carevault.web")
    assert lines[1].split(" ")[1:3] == ["INFO", "uvicorn.error"]
    assert "Chan" not in captured.getvalue()


def test_an_unknown_log_format_is_refused(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="log_format"):
        Settings(home=tmp_path, log_format="xml")
