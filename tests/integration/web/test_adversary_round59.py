"""Adversary round 59, an insider reading the server's log: failures logged by
CareVault's loggers other than the ones ``logsafe`` was installed on by name
(``carevault.web``, ``carevault.ledger``) kept their message and traceback: the export
and import worker thread's, the summary of refused requests', start-up's (a logger's
filters never see the records its children pass up, and these were named for their
modules)."""

from __future__ import annotations

import logging

import pytest

from carevault import bootstrap
from carevault.access import refusals
from carevault.bootstrap import Services
from carevault.export import worker
from carevault.ledger import activity
from carevault.web.app import create_app
from carevault.web.console import notices

SECRET = "Chan Tai Man <chan.taiman@example.hk>"


def test_no_carevault_logger_of_the_server_logs_a_failures_message_or_traceback(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    create_app(services.settings, services)
    caplog.set_level(logging.DEBUG)
    for logger in (worker.log, refusals.log, bootstrap.log, notices.log, activity.log):
        try:
            raise RuntimeError(f"550 mailbox unavailable: {SECRET}")
        except RuntimeError:
            logger.exception("a job of %s stopped", "incident 7")
    assert len(caplog.records) == 5
    formatter = logging.Formatter()
    logged = "\n".join(formatter.format(record) for record in caplog.records)
    assert "Chan" not in logged and "example.hk" not in logged and "Traceback" not in logged
    # What an operator needs is left: what stopped, the failure's kind and its place.
    assert all(
        "a job of incident 7 stopped [RuntimeError at " in r.getMessage() for r in caplog.records
    )
