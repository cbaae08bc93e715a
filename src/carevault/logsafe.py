"""Logging failures without the data they were about.

An exception's message and a traceback's source lines and arguments may quote a
patient's name, an HKID number or a request body, so nothing CareVault logs carries
them. What an operator gets instead is enough to find the fault in the code: the
exception's type and where it was raised (file, line and function, innermost frame and
innermost CareVault frame), with a reference that the client was also given.
"""

from __future__ import annotations

import logging
import traceback
from pathlib import PurePath
from types import TracebackType


def _where(frame: traceback.FrameSummary) -> str:
    parts = PurePath(frame.filename).parts
    shown = parts[parts.index("carevault") :] if "carevault" in parts else parts[-2:]
    return f"{'/'.join(shown)}:{frame.lineno} in {frame.name}"


def describe(error: BaseException) -> str:
    """``KeyError at carevault/gate.py:301 in _visible``: the type and the code location."""
    return describe_parts(type(error), error.__traceback__)


def describe_parts(kind: type[BaseException], trace: TracebackType | None) -> str:
    frames = traceback.extract_tb(trace) if trace is not None else []
    if not frames:
        return kind.__name__
    ours = [frame for frame in frames if "carevault" in PurePath(frame.filename).parts]
    text = f"{kind.__name__} at {_where(frames[-1])}"
    if ours and ours[-1] is not frames[-1]:
        text += f" (from {_where(ours[-1])})"
    return text


class NoTracebacks(logging.Filter):
    """Turns a record's exception into its type and code location; drops the traceback.

    Installed on the server's loggers (uvicorn's among them), so a library that logs
    ``exc_info`` cannot put a request's data in the log either.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] is not None:
            kind, _, trace = record.exc_info
            record.msg = f"{str(record.msg).rstrip()} [{describe_parts(kind, trace)}]"
            record.exc_info = None
            record.exc_text = None
            record.stack_info = None
        return True


def install(*names: str) -> None:
    """Put ``NoTracebacks`` on the named loggers (once each)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(item, NoTracebacks) for item in logger.filters):
            logger.addFilter(NoTracebacks())


def install_tree(prefix: str) -> None:
    """Put ``NoTracebacks`` on ``prefix``'s logger and on every logger below it made so
    far. A logger's filters see only the records logged on that very logger, never
    those its children pass up: installed on ``carevault.web`` alone, a failure logged
    by ``carevault.web.console.notices`` (a notice job's error may quote an address) or
    by a worker thread kept its message and traceback (adversary round 59). Module
    loggers are made as their modules are imported, so call this once the application
    is built."""
    install(prefix)
    below = prefix + "."
    for name in list(logging.root.manager.loggerDict):
        if name.startswith(below):
            install(name)
