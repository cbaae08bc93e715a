"""Integrator round 67: a SOC polls the alerts as its SIEM connector does, with only the
alerts it has not seen (``--after`` the last id, ``--since`` the last poll), and files
each by when the activity happened and at which clinic, from the JSON alone."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from carevault.cli import app
from carevault.clock import fhir_instant
from carevault.domain.roles import Role
from carevault.sim.evaluate import ALERT_KEYS
from tests.integration.detect.conftest import (
    Clinic,
    clinic_patients,
    clinic_settings,
    opened_clinic,
)
from tests.support.staff import make_staff


def _cli(clinic: Clinic, *options: str) -> Any:
    settings = clinic.services.settings
    env = {"CAREVAULT_DATABASE_URL": settings.database_url} if settings.database_url else {}
    return CliRunner().invoke(
        app, ["alerts", "list", "--json", *options, "--home", str(settings.home)], env=env
    )


def _listed(clinic: Clinic, *options: str) -> list[dict[str, Any]]:
    result = _cli(clinic, *options)
    assert result.exit_code == 0, result.output
    alerts: list[dict[str, Any]] = json.loads(result.stdout)
    return alerts


def _over_budget(clinic: Clinic) -> None:
    """A front desk of clinic A reads past its release budget (30): an alert."""
    desk = make_staff(clinic.services, Role.FRONT_DESK, ["clinic-a"])
    for patient in clinic.patients[:32]:
        clinic.read(desk, patient)


def _recorded(clinic: Clinic, seq: int) -> str:
    """When entry ``seq`` was recorded, as the AuditEvent search tells an outsider."""
    found = clinic.web.get(
        f"/fhir/AuditEvent?_after={seq - 1}&_count=1", headers=clinic.officer.headers
    ).json()["entry"][0]["resource"]
    assert found["id"] == f"audit-{seq}"
    recorded: str = found["recorded"]
    return recorded


def _same_moment(alert_time: str, fhir_time: str) -> bool:
    return datetime.fromisoformat(alert_time) == datetime.fromisoformat(fhir_time)


def test_each_alert_says_when_its_activity_happened_and_at_which_clinic(clinic: Clinic) -> None:
    _over_budget(clinic)
    alerts = _listed(clinic)
    assert alerts
    for alert in alerts:
        assert set(alert) == ALERT_KEYS
        assert alert["clinics"] == ["clinic-a"]
        assert _same_moment(alert["first_activity_at"], _recorded(clinic, alert["first_position"]))
        assert _same_moment(alert["last_activity_at"], _recorded(clinic, alert["last_position"]))
        assert alert["first_activity_at"] <= alert["last_activity_at"] <= alert["updated_at"]
    # The route and ``alerts show`` answer the same objects.
    route = clinic.web.get("/admin/alerts", headers=clinic.officer.headers)
    assert route.status_code == 200
    assert route.json() == {"alerts": alerts}
    shown = clinic.web.get(f"/admin/alerts/{alerts[0]['id']}", headers=clinic.officer.headers)
    assert {k: v for k, v in shown.json().items() if k != "patients"} == alerts[0]


def test_a_poll_lists_only_the_alerts_after_the_last_id_it_saw(clinic: Clinic) -> None:
    _over_budget(clinic)
    first_poll = _listed(clinic)
    last_id = first_poll[-1]["id"]
    assert _listed(clinic, "--after", last_id) == []
    assert _listed(clinic, "--after", "0") == first_poll

    _over_budget(clinic)  # another desk: new alerts since the poll
    second_poll = _listed(clinic, "--after", last_id)
    assert second_poll
    assert all(int(alert["id"]) > int(last_id) for alert in second_poll)
    assert _listed(clinic) == first_poll + second_poll
    route = clinic.web.get(f"/admin/alerts?after={last_id}", headers=clinic.officer.headers)
    assert route.json() == {"alerts": second_poll}


def test_a_poll_since_a_time_lists_what_was_raised_or_grew_since(clinic: Clinic) -> None:
    _over_budget(clinic)
    first_poll = _listed(clinic)
    polled_at = clinic.services.clock()
    assert _listed(clinic, "--since", polled_at.isoformat()) == []
    hour_before = polled_at - timedelta(hours=1)
    assert _listed(clinic, "--since", hour_before.isoformat()) == first_poll

    _over_budget(clinic)
    since = _listed(clinic, "--since", polled_at.isoformat())
    assert since
    seen = {alert["id"] for alert in first_poll}
    assert all(alert["id"] not in seen for alert in since)
    # With a Z, and as the route's query parameter, the same moment.
    zulu = fhir_instant(polled_at)
    assert _listed(clinic, "--since", zulu) == since
    route = clinic.web.get("/admin/alerts", params={"since": zulu}, headers=clinic.officer.headers)
    assert route.json() == {"alerts": since}


def test_a_bad_filter_is_refused_saying_why(clinic: Clinic) -> None:
    for options, words in (
        (("--since", "yesterday"), "not an ISO-8601"),
        (("--since", "1764990000"), "not an ISO-8601"),
        (("--after", "abc"), "alert id"),
        (("--after", "-1"), "alert id"),
        (("--after", "1.5"), "alert id"),
    ):
        result = _cli(clinic, *options)
        assert result.exit_code == 2, (options, result.output)
        assert words in result.stderr, (options, result.stderr)
        assert "Traceback" not in result.output
        assert result.stdout == ""
    for query in ("since=yesterday", "after=abc", "after=-1", "after=99999999999999999999"):
        answer = clinic.web.get(f"/admin/alerts?{query}", headers=clinic.officer.headers)
        assert answer.status_code == 400, (query, answer.text)
        assert answer.json()["resourceType"] == "OperationOutcome"
    # The largest number that is an id is a poll after every alert, not an error.
    huge = clinic.web.get("/admin/alerts?after=999999999999999999", headers=clinic.officer.headers)
    assert huge.json() == {"alerts": []}


def test_the_poll_is_for_a_privacy_officer_only(clinic: Clinic) -> None:
    _over_budget(clinic)
    nurse = make_staff(clinic.services, Role.NURSE, ["clinic-a"])
    for query in ("after=0", "since=2000-01-01"):
        answer = clinic.web.get(f"/admin/alerts?{query}", headers=nurse.headers)
        assert answer.status_code == 403, answer.text


def test_a_poll_since_a_time_lists_an_alert_handled_since_with_its_new_status(
    clinic: Clinic,
) -> None:
    """An alert acknowledged or dismissed after the SIEM polled it is listed again by the
    next poll, with its status (round 67 left it open: the SIEM kept it open for good)."""
    _over_budget(clinic)
    (first, *_) = _listed(clinic)
    polled_at = clinic.services.clock()
    assert _listed(clinic, "--since", polled_at.isoformat()) == []
    colleague = make_staff(clinic.services, Role.PRIVACY_OFFICER, ["clinic-a"])
    dismissed = clinic.web.post_json(
        f"/admin/alerts/{first['id']}/dismiss",
        {"reason": "a planned audit", "totp": colleague.totp()},
        **colleague.headers,
    )
    assert dismissed.status_code == 200, dismissed.text
    (again,) = _listed(clinic, "--since", polled_at.isoformat())
    assert again["id"] == first["id"] and again["status"] == "dismissed"
    assert again["updated_at"] > first["updated_at"]


def test_an_alert_sent_to_the_webhook_is_described_as_a_poll_lists_it(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The webhook (and the mailbox) get the alert as ``alerts list --json`` gives it:
    when its activity happened and at which clinics (round 67 left them the old fields)."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings = clinic_settings(
        backend, tmp_path, request, release_budget="front_desk=30/100",
        alert_webhook_url=f"http://127.0.0.1:{server.server_address[1]}/hook",
    )  # fmt: skip
    try:
        with opened_clinic(settings, clinic_patients()) as clinic:
            _over_budget(clinic)
            # Judged by this server's detectors, which send what they raise.
            clinic.services.detection.engine.catch_up()
            clinic.services.detection.sinks.flush()
            listed = {alert["id"]: alert for alert in _listed(clinic)}
    finally:
        server.shutdown()
        server.server_close()
    assert received
    for sent in (item["alert"] for item in received):
        polled = listed[sent["id"]]
        assert sent["clinics"] == polled["clinics"] == ["clinic-a"]
        assert sent["first_activity_at"] == polled["first_activity_at"]
        assert set(sent) == set(polled) | {"action"}
