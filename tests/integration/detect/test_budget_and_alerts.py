"""The release budget at the gate and the alerts it leads to, in-process over HTTP."""

from __future__ import annotations

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
