"""Library logs that carry exc_info (uvicorn's among them) lose the traceback."""

from __future__ import annotations

import io
import logging

from carevault import logsafe


def test_a_record_with_a_traceback_keeps_only_the_type_and_the_place() -> None:
    logsafe.install("uvicorn.error")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(handler)
    try:
        try:
            patient = {"name": "Chan Tai Man"}
            raise LookupError(f"no HKID for {patient['name']}")
        except LookupError as error:
            logger.error("Exception in ASGI application\n", exc_info=error)
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert text.startswith("Exception in ASGI application [LookupError at ")
    assert "test_logsafe.py" in text and "Chan" not in text and "Traceback" not in text


def test_install_is_idempotent() -> None:
    logsafe.install("carevault.test")
    logsafe.install("carevault.test")
    filters = logging.getLogger("carevault.test").filters
    assert sum(isinstance(item, logsafe.NoTracebacks) for item in filters) == 1
