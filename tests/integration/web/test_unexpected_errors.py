"""An unexpected failure is answered with a 500 OperationOutcome and logged as its type,
its code location and a reference: never a traceback, a message or request data, and
never handed on to the server (whose own log would print the traceback)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from starlette.testclient import TestClient

from carevault.bootstrap import Services
from carevault.web.app import create_app

SECRET = "Chan Tai Man A123456(3)"


def _fail_with_patient_data(name: str = SECRET) -> Any:
    record = {"name": name}
    return record["hkid"]  # KeyError, raised with a patient's details in scope


def test_an_unexpected_error_logs_its_place_and_reference_but_no_data(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(services.settings, services)

    async def broken(request: Any) -> Any:
        body = await request.body()
        raise ValueError(f"could not file {body.decode()} for {SECRET}")

    app.add_route("/test/broken", broken, methods=["POST"])
    app.add_route("/test/lookup", lambda request: _fail_with_patient_data(), methods=["GET"])
    caplog.set_level(logging.DEBUG)
    # raise_server_exceptions: anything that escaped the app would be raised here, as the
    # server would have logged it with its traceback.
    with TestClient(app, raise_server_exceptions=True) as client:
        broken_answer = client.post("/test/broken", content=SECRET.encode())
        lookup_answer = client.get("/test/lookup")
    for response in (broken_answer, lookup_answer):
        assert response.status_code == 500
        issue = response.json()["issue"][0]
        assert issue["code"] == "exception" and "reference" in issue["diagnostics"]
        assert "Chan" not in response.text and "A123456" not in response.text
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "ValueError at web/test_unexpected_errors.py:" in logged and "in broken" in logged
    assert "KeyError at" in logged and "in _fail_with_patient_data" in logged
    reference = lookup_answer.json()["issue"][0]["diagnostics"].rsplit(" ", 1)[-1]
    assert reference in logged
    # The reference is the request's name, which the answer carries too.
    assert lookup_answer.headers["x-request-id"] == reference
    assert broken_answer.headers["x-request-id"] != reference
    assert "Chan" not in logged and "A123456" not in logged and "hkid" not in logged
    assert all(record.exc_info is None for record in caplog.records)
    assert "Traceback" not in caplog.text
