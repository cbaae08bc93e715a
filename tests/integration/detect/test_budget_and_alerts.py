"""The release budget at the gate and the alerts it leads to, in-process over HTTP."""

from __future__ import annotations

import json

import pytest

from carevault.containment.state import Mode
from carevault.detect import alerts_as_dicts
from carevault.sim.evaluate import ALERT_KEYS
from tests.integration.detect.conftest import Clinic


def test_reads_past_the_budget_are_refused_with_a_reason(clinic: Clinic) -> None:
    statuses = [clinic.read(clinic.desk, patient) for patient in clinic.patients[:31]]
    assert statuses[:30] == [200] * 30
    assert statuses[30] == 429
    refused = clinic.web.get(f"/fhir/Patient/{clinic.patients[31]}", headers=clinic.desk.headers)
    outcome = refused.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "release budget" in outcome["issue"][0]["diagnostics"]
    # A patient already released today costs nothing more.
    assert clinic.read(clinic.desk, clinic.patients[0]) == 200


def test_a_refusal_raises_an_alert_and_suspends_the_account(clinic: Clinic) -> None:
    for patient in clinic.patients[:32]:
        clinic.read(clinic.desk, patient)
    alerts = alerts_as_dicts(clinic.services)
    assert all(set(alert) == ALERT_KEYS for alert in alerts)
    budget = [a for a in alerts if a["detector"] == "release-budget"]
    assert len(budget) == 1, alerts
    assert budget[0]["account"] == clinic.desk.account.username
    assert budget[0]["severity"] == "high"
    assert budget[0]["action"] == "suspend"
    active = clinic.services.containment.refresh().active
    assert any(
        c.mode is Mode.ACCOUNT_SUSPENDED and c.target == clinic.desk.account.username
        for c in active
    )
    assert clinic.read(clinic.desk, clinic.patients[0]) == 401


def test_catching_up_twice_raises_nothing_twice(clinic: Clinic) -> None:
    for patient in clinic.patients[:32]:
        clinic.read(clinic.desk, patient)
    first = alerts_as_dicts(clinic.services)
    again = alerts_as_dicts(clinic.services)
    assert [a["id"] for a in first] == [a["id"] for a in again]


def test_ordinary_reads_raise_nothing(clinic: Clinic) -> None:
    for patient in clinic.patients[:10]:
        assert clinic.read(clinic.desk, patient) == 200
    assert alerts_as_dicts(clinic.services) == []


def test_the_cli_lists_alerts_as_json_and_an_officer_dismisses_one(clinic: Clinic) -> None:
    from typer.testing import CliRunner

    from carevault.cli import app

    for patient in clinic.patients[:32]:
        clinic.read(clinic.desk, patient)
    home = str(clinic.services.settings.home)
    env = {"CAREVAULT_DATABASE_URL": clinic.services.settings.database_url or ""}
    env = {k: v for k, v in env.items() if v}
    runner = CliRunner()
    listed = runner.invoke(app, ["alerts", "list", "--json", "--home", home], env=env)
    assert listed.exit_code == 0, listed.output
    alerts = json.loads(listed.output)
    assert {a["detector"] for a in alerts} >= {"release-budget"}
    assert all(set(a) == ALERT_KEYS for a in alerts)
    first = alerts[0]["id"]
    refused = runner.invoke(
        app,
        ["alerts", "dismiss", first, "--reason", "x", "--officer", clinic.desk.account.username,
         "--totp", clinic.desk.totp(), "--home", home],
        env=env,
    )  # fmt: skip
    assert refused.exit_code != 0
    done = runner.invoke(
        app,
        ["alerts", "dismiss", first, "--reason", "a known audit", "--officer",
         clinic.officer.account.username, "--totp", clinic.officer.totp(), "--home", home],
        env=env,
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert clinic.services.detection is not None
    assert clinic.services.detection.alerts.get(first).status == "dismissed"
    status = runner.invoke(app, ["status", "--home", home], env=env)
    assert "Detection:" in status.output


def test_admin_alerts_is_for_a_privacy_officer(clinic: Clinic) -> None:
    for patient in clinic.patients[:32]:
        clinic.read(clinic.desk, patient)
    alerts_as_dicts(clinic.services)
    officer = clinic.web.get("/admin/alerts", headers=clinic.officer.headers)
    assert officer.status_code == 200
    assert {a["detector"] for a in officer.json()["alerts"]} >= {"release-budget"}
    assert all(set(a) == ALERT_KEYS for a in officer.json()["alerts"])
    other = clinic.web.get("/admin/alerts", headers=clinic.desk.headers)
    assert other.status_code in (401, 403)


def test_an_unknown_status_is_refused_not_taken_for_every_alert(clinic: Clinic) -> None:
    from typer.testing import CliRunner

    from carevault.cli import app

    home = str(clinic.services.settings.home)
    env = {"CAREVAULT_DATABASE_URL": clinic.services.settings.database_url or ""}
    env = {k: v for k, v in env.items() if v}
    listed = CliRunner().invoke(
        app, ["alerts", "list", "--status", "closed", "--json", "--home", home], env=env
    )
    assert listed.exit_code == 2, listed.output
    assert "open" in listed.output and "acknowledged" in listed.output
    assert "dismissed" in listed.output
    refused = clinic.web.get("/admin/alerts?status=closed", headers=clinic.officer.headers)
    assert refused.status_code == 400
    assert "open, acknowledged, dismissed" in refused.text
    fine = clinic.web.get("/admin/alerts?status=open", headers=clinic.officer.headers)
    assert fine.status_code == 200


def test_alert_case_names_the_account_and_address(clinic: Clinic) -> None:
    import pytest

    from carevault.detect import alert_case

    for patient in clinic.patients[:32]:
        clinic.read(clinic.desk, patient)
    alert = alerts_as_dicts(clinic.services)[0]
    case = alert_case(clinic.services, alert["id"])
    assert case["accounts"] == [clinic.desk.account.username]
    # The in-process test client has no IP address: none is made up.
    assert case["addresses"] == []
    assert case["until"] is None
    assert case["since"].endswith("+00:00")
    with pytest.raises(KeyError):
        alert_case(clinic.services, "999999")


def test_the_budget_forgets_releases_of_the_days_before_yesterday(clinic: Clinic) -> None:
    """The budget counts today's releases only: the first release a process records on
    a day sweeps the days before yesterday (the table kept every account's patients of
    every day for good; the ledger is where what was released stays)."""
    from sqlalchemy import select

    from carevault.db import read_transaction, write_transaction
    from carevault.detect.model import DAY_US
    from carevault.detect.tables import detect_release

    budget = clinic.services.gate.release
    assert budget is not None
    start = DAY_US * 20_000

    def release(day: int, *patients: str) -> None:
        claimed = budget.claim("staff:someone", "front_desk", patients, start + day * DAY_US)
        assert claimed is not None
        with write_transaction(clinic.services.engine) as connection:
            claimed.ride(connection)
        claimed.committed()

    def days() -> list[int]:
        with read_transaction(clinic.services.engine) as connection:
            rows = connection.execute(
                select(detect_release.c.day).where(detect_release.c.account == "staff:someone")
            )
            return sorted({int(day) - 20_000 for (day,) in rows})

    release(0, "p1", "p2")
    release(1, "p1")
    assert days() == [0, 1]
    release(2, "p3")  # the first release of day 2 sweeps day 0, keeps yesterday
    assert days() == [1, 2]
    release(2, "p4")
    release(5, "p1")
    assert days() == [5]


def test_the_hourly_budget_holds_across_midnight(clinic: Clinic) -> None:
    """Adversary round 42: the hour's count read today's releases only, so at 00:01 a
    desk that had taken its hour's 30 patients at 23:59 took 30 more (a physician 160
    patients in two minutes where the budget says 80 an hour). The last hour reaches
    back into yesterday; a patient given at 23:59 and again at 00:01 counts once."""
    from carevault.db import write_transaction
    from carevault.detect.budget import ReleaseRefused
    from carevault.detect.model import DAY_US

    budget = clinic.services.gate.release
    assert budget is not None
    midnight = DAY_US * 20_000 - budget.offset_us  # a local midnight

    def release(at_us: int, patients: list[str]) -> None:
        claimed = budget.claim("staff:someone", "front_desk", patients, at_us)
        assert claimed is not None
        with write_transaction(clinic.services.engine) as connection:
            claimed.ride(connection)
        claimed.committed()

    minute = 60_000_000
    hour_ago = [f"p{n}" for n in range(30)]
    release(midnight - minute, hour_ago)  # the hour's 30, at 23:59
    with pytest.raises(ReleaseRefused):
        release(midnight + minute, ["p30"])  # a 31st at 00:01
    # The same 30 again at 00:01 (a new day): still 30 in the hour, within it.
    release(midnight + minute, hour_ago)
    # Once the hour since has passed, there is room again.
    release(midnight + 62 * minute, ["p30"])
