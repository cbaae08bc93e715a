"""What the ledgers hold, read back in tests."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from carevault.bootstrap import Services
from carevault.ledger.events import AuditEvent, Outcome, Tag


def audit_events(services: Services) -> list[AuditEvent]:
    """Every audit ledger entry, in ledger order."""
    store = services.audit_ledger.store
    return [AuditEvent.from_canonical(data) for _, data in store.entries()]


def entries_once_written(services: Services, tag: str, seconds: float = 5) -> list[AuditEvent]:
    """The audit entries of ``tag``, waiting up to ``seconds`` for the first: entries a
    process submits without waiting (``ledger.trail.submit_unwaited``) land a moment
    after what made them. Empty if none came."""
    deadline = time.monotonic() + seconds
    while True:
        found = [event for event in audit_events(services) if event.tag == tag]
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.02)


def unwraps(services: Services) -> int:
    """How many entries the key-unwrap ledger holds."""
    return services.unwrap_ledger.store.head()[0]


def patient_pseudonym(services: Services, patient_id: str) -> str:
    """The pseudonym the ledger names the patient ``patient_id`` by."""
    return str(services.vault.locate("Patient", patient_id).head.patient_pseudonym)


#: 2026-01-01T00:00:00Z, in microseconds: when the incident tests' reads happen.
JAN_1 = 1_767_225_600_000_000


def record_reads(services: Services, principal: str, numbers: Iterable[int], **fields: Any) -> None:
    """Record, as the gate would, ``principal``'s reads of the patients ``p<n>``
    (pseudonym ``ps<n>``, identity data) for each ``n`` of ``numbers``, ``n`` minutes
    past midnight on 1 January 2026; ``fields``: more of each ``AuditEvent``'s."""
    services.audit.record(
        [
            AuditEvent(
                tag=Tag.FHIR_READ,
                outcome=Outcome.SUCCESS,
                at_us=JAN_1 + n * 60_000_000,
                principal=principal,
                resource_type="Patient",
                resource_id=f"p{n}",
                patient_pseudonym=f"ps{n}",
                categories=("identity",),
                **fields,
            )
            for n in numbers
        ]
    )


def altered_alerts(services: Services) -> list[str]:
    """The severities of the ``stored-data-altered`` alerts raised on what the ledger
    holds now (the detectors caught up first)."""
    detection = services.detection
    assert detection is not None
    detection.engine.catch_up()
    return [
        alert.severity
        for alert in detection.alerts.list()
        if alert.detector == "stored-data-altered"
    ]
