"""How the server's log lines look: one line per record, with its time, level, logger
and process, as plain text or as JSON for a log shipper (``CAREVAULT_LOG_FORMAT``).

Until integrator round 70, ``carevault serve`` used uvicorn's own format (``INFO:
Started server process``: no time, no logger, one prefix padded with spaces), and
CareVault's own loggers had no handler at all: their warnings reached standard error
through Python's last-resort handler as the bare message (no time, no level, no
logger), and their information was dropped. A shipper could not tell a CareVault line
from uvicorn's, nor when either was written.

Every handler here carries ``logsafe.NoTracebacks``: whatever logs an exception, the
line holds its type and code location, never its message or traceback, which may quote
a patient's data.
"""

from __future__ import annotations

import json
import logging
import logging.config
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]

#: The loggers the server's configuration takes over: uvicorn's and CareVault's own.
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "carevault")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"


def _instant(created: float) -> str:
    moment = datetime.fromtimestamp(created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class UtcText(logging.Formatter):
    """``2026-12-06T14:30:08.123Z INFO carevault.web [8120] message``."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        return _instant(record.created)


class JsonLines(logging.Formatter):
    """One JSON object a line: ``time`` (UTC, milliseconds), ``level``, ``logger``,
    ``process`` and ``message``. A record's exception has already been turned into its
    type and place by ``NoTracebacks``; any left is named the same way, never printed."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info and record.exc_info[0] is not None:
            from carevault.logsafe import describe_parts

            kind, _, trace = record.exc_info
            message = f"{message.rstrip()} [{describe_parts(kind, trace)}]"
        document = {
            "time": _instant(record.created),
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "message": message,
        }
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def logging_config(form: LogFormat, level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` document (what uvicorn's ``log_config`` takes):
    every server logger to standard error, in ``form``."""
    formatter = "carevault.logformat.JsonLines" if form == "json" else "carevault.logformat.UtcText"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"no_tracebacks": {"()": "carevault.logsafe.NoTracebacks"}},
        "formatters": {"line": {"()": formatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "line",
                "filters": ["no_tracebacks"],
            }
        },
        "loggers": {
            name: {"handlers": ["stderr"], "level": level, "propagate": False}
            for name in SERVER_LOGGERS
        },
    }


def configure(form: LogFormat) -> None:
    """Log as ``carevault serve`` does, in a process uvicorn does not configure: the
    supervisor before uvicorn starts (a detection process's restarts), and
    ``carevault detect``."""
    logging.config.dictConfig(logging_config(form))
