"""A restart in the middle of a burst neither loses the alert nor raises it twice; a
detector that fails raises an internal alert and never holds up the ledger."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from carevault.bootstrap import Services, build_services
from carevault.config import Settings
from carevault.detect import alerts_as_dicts
from carevault.detect.signals import Detectors
from carevault.web.app import create_app
from tests.integration.detect.conftest import Clinic
from tests.support.client import FhirTestClient


@pytest.fixture
def reopen(detect_settings: Settings) -> Iterator[list[Services]]:
    opened: list[Services] = []
    yield opened
    for services in opened:
        services.close()


def test_a_burst_across_a_restart_is_one_alert(
    clinic: Clinic, detect_settings: Settings, reopen: list[Services]
) -> None:
    for patient in clinic.patients[:20]:
        assert clinic.read(clinic.desk, patient) == 200
    assert alerts_as_dicts(clinic.services) == []
    clinic.services.close()  # the server stops: its detectors have judged 20 reads
    again = build_services(detect_settings)
    reopen.append(again)
    with FhirTestClient(create_app(again.settings, again)) as web:
        for patient in clinic.patients[20:30]:
            response = web.get(f"/fhir/Patient/{patient}", headers=clinic.desk.headers)
            assert response.status_code == 200
    alerts = alerts_as_dicts(again)
    breadth = [a for a in alerts if a["detector"] == "breadth"]
    assert len(breadth) == 1, alerts
    assert breadth[0]["patient_count"] >= 26
    assert "distinct patients" in breadth[0]["explanation"]
    # Judging again (another process, a second catch-up) adds nothing.
    third = build_services(detect_settings)
    reopen.append(third)
    assert [a["id"] for a in alerts_as_dicts(third)] == [a["id"] for a in alerts]


def test_a_failing_detector_raises_an_internal_alert_and_the_ledger_goes_on(
    clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> list[object]:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(Detectors, "observe", broken)
    assert clinic.read(clinic.desk, clinic.patients[0]) == 200
    alerts = alerts_as_dicts(clinic.services)
    # One per account and day, however many entries it failed on.
    assert {a["detector"] for a in alerts} == {"detector-failure"}
    assert len(alerts) <= 2
    assert all(a["action"] == "raise" for a in alerts)
    assert clinic.read(clinic.desk, clinic.patients[1]) == 200
    assert clinic.services.detection is not None
    clinic.services.detection.engine.catch_up()
    head, _ = clinic.services.audit_ledger.store.head()
    assert clinic.services.detection.engine.position() == head
