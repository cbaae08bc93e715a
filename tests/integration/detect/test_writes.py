"""When the detectors write: what a batch judged waits in memory (at most a second in a
server) unless it raises an alert or escalates one, which is written at once; whatever
waited is written on shutdown, or judged again by the process that takes over."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from carevault.bootstrap import Services, build_services
from carevault.config import Settings
from carevault.detect.budget import ReleaseRefused
from carevault.detect.engine import DetectionEngine
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate.core import Caller
from tests.integration.detect.conftest import Clinic
from tests.support.staff import Staff

PATIENT = RESOURCE_TYPES["Patient"]


@pytest.fixture
def offline(clinic: Clinic, detect_settings: Settings) -> Iterator[list[Services]]:
    """Services like another server process's, none of them started (their detectors
    step only when told); the clinic's own server stops first."""
    clinic.services.close()
    opened: list[Services] = []
    yield opened
    for services in opened:
        services.close()


def open_services(settings: Settings, opened: list[Services]) -> tuple[Services, DetectionEngine]:
    services = build_services(settings)
    opened.append(services)
    assert services.detection is not None
    engine = services.detection.engine
    engine.write_seconds = 3600.0  # never due by time in a test: only what is urgent
    return services, engine


def caller_of(services: Services, staff: Staff) -> Caller:
    who = services.access.authenticate(staff.token)
    return Caller(
        principal=who.actor.principal,
        actor=who.actor,
        session_id=who.session_id,
        client_id=who.client_id,
    )


def test_quiet_batches_wait_and_a_takeover_judges_them_again(
    clinic: Clinic, detect_settings: Settings, offline: list[Services]
) -> None:
    services, engine = open_services(detect_settings, offline)
    caller = caller_of(services, clinic.desk)
    for patient in clinic.patients[:5]:
        services.gate.read(caller, PATIENT, patient)
    head, _ = services.audit_ledger.store.head()
    stored = engine.position()
    assert engine.step()  # judged; nothing raised: not written yet
    assert engine.position() == stored < head
    # The process dies here. Another judges the same entries from the stored cursor:
    # nothing is lost, nothing was counted by the first.
    other, other_engine = open_services(detect_settings, offline)
    other_engine.catch_up()
    assert other_engine.position() == head
    assert other.detection is not None
    assert other.detection.alerts.list() == []
    # The first one sees the cursor moved on (and leased): it drops what it judged.
    assert not engine.step()
    assert engine.position() == head


def test_a_new_alert_is_written_at_once(
    clinic: Clinic, detect_settings: Settings, offline: list[Services]
) -> None:
    services, engine = open_services(detect_settings, offline)
    caller = caller_of(services, clinic.desk)
    refused = 0
    for patient in clinic.patients[:31]:
        try:
            services.gate.read(caller, PATIENT, patient)
        except ReleaseRefused:  # the 31st: past the budget
            refused += 1
    assert refused == 1
    head, _ = services.audit_ledger.store.head()
    engine.step()
    assert services.detection is not None
    assert "release-budget" in {a.detector for a in services.detection.alerts.list()}
    assert engine.position() == head


def test_what_waited_is_written_on_shutdown(
    clinic: Clinic, detect_settings: Settings, offline: list[Services]
) -> None:
    services, engine = open_services(detect_settings, offline)
    caller = caller_of(services, clinic.desk)
    for patient in clinic.patients[:3]:
        services.gate.read(caller, PATIENT, patient)
    head, _ = services.audit_ledger.store.head()
    assert engine.step()
    assert engine.position() < head
    services.close()
    _, again = open_services(detect_settings, offline)
    assert again.position() == head
