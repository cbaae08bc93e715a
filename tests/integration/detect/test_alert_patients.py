"""An alert counts every patient it names, past the 5,000 its page lists: the count of a
bulk read of a whole group (20,000 patients) stopped near 5,000, and a severity that
turns critical at a number of patients never got there."""

from __future__ import annotations

from sqlalchemy import select

from carevault.bootstrap import Services
from carevault.db import read_transaction, write_transaction
from carevault.detect.alerts import KEPT_PATIENTS
from carevault.detect.model import Access, Finding, Severity
from carevault.detect.tables import detect_alert_patient

PRINCIPAL = "staff:mallory"


def _finding(position: int, patients: range, critical_at: int | None = None) -> Finding:
    access = Access(
        position=position,
        at_us=1_000_000 + position,
        tag="fhir:resource:read",
        outcome="success",
        principal=PRINCIPAL,
        role="front_desk",
    )
    return Finding(
        "breadth",
        Severity.MEDIUM,
        "day-1",
        f"{len(patients)} distinct patients",
        access,
        tuple(f"p{n:06d}" for n in patients),
        critical_at=critical_at,
    )


def _upsert(services: Services, finding: Finding) -> dict[str, object]:
    detection = services.detection
    assert detection is not None
    seen = detection.alerts.look_up([finding])
    with write_transaction(services.engine) as connection:
        detection.alerts.upsert(
            connection, [finding], 2_000_000 + finding.access.position, seen=seen
        )
    (alert,) = detection.alerts.list()
    return {
        "count": alert.patient_count,
        "listed": len(alert.patients),
        "severity": alert.severity,
        "id": alert.alert_id,
    }


def test_an_alert_counts_every_patient_past_the_ones_it_lists(services: Services) -> None:
    critical_at = KEPT_PATIENTS + 2500
    first = _upsert(services, _finding(1, range(KEPT_PATIENTS - 100), critical_at))
    assert first["count"] == KEPT_PATIENTS - 100
    # Past the list: 900 new of 1,000 named.
    second = _upsert(
        services, _finding(2, range(KEPT_PATIENTS - 200, KEPT_PATIENTS + 800), critical_at)
    )
    assert second["count"] == KEPT_PATIENTS + 800
    assert second["listed"] == KEPT_PATIENTS
    assert second["severity"] is Severity.MEDIUM
    # Each finding names its window's patients: the ones before it past the list are
    # counted still, those named again (listed or not) once.
    third = _upsert(
        services, _finding(3, range(KEPT_PATIENTS + 800, KEPT_PATIENTS + 1800), critical_at)
    )
    assert third["count"] == KEPT_PATIENTS + 1800
    assert third["severity"] is Severity.MEDIUM
    fourth = _upsert(
        services, _finding(4, range(KEPT_PATIENTS + 1700, KEPT_PATIENTS + 2800), critical_at)
    )
    assert fourth["count"] == KEPT_PATIENTS + 2800
    assert fourth["severity"] is Severity.CRITICAL
    assert fourth["id"] == first["id"]
    with read_transaction(services.engine) as connection:
        named = (
            connection.execute(
                select(detect_alert_patient.c.patient_pseudonym).where(
                    detect_alert_patient.c.alert_id == first["id"]
                )
            )
            .scalars()
            .all()
        )
    assert sorted(named) == [f"p{n:06d}" for n in range(KEPT_PATIENTS + 2800)]


def test_the_page_lists_the_first_patients_and_the_count_says_how_many_more(
    services: Services,
) -> None:
    _upsert(services, _finding(1, range(KEPT_PATIENTS + 10)))
    detection = services.detection
    assert detection is not None
    (alert,) = detection.alerts.list()
    assert alert.patient_count == KEPT_PATIENTS + 10
    assert list(alert.patients) == [f"p{n:06d}" for n in range(KEPT_PATIENTS)]
