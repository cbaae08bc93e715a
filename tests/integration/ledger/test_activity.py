"""The hourly activity counts behind the console's chart: each entry counted once, by
hour and actor, however often and from however many processes the counts are read."""

from __future__ import annotations

import pytest

from carevault.bootstrap import Services, build_services
from carevault.ledger.activity import HOUR_US, catch_up, hourly_accesses
from carevault.ledger.events import AuditEvent, Outcome, Tag

pytestmark = pytest.mark.postgres


def _accesses(services: Services, actor: str, patients: int, at_us: int) -> None:
    services.audit.record(
        [
            AuditEvent(
                tag=Tag.FHIR_READ,
                outcome=Outcome.SUCCESS,
                at_us=at_us,
                principal=actor,
                patient_pseudonym=f"ps-{number}",
            )
            for number in range(patients)
        ]
        # Not about a patient: not an access to count.
        + [AuditEvent(tag=Tag.AUTH_SIGNED_IN, outcome=Outcome.SUCCESS, at_us=at_us)]
    )


def test_each_access_is_counted_once_by_hour_and_actor(services: Services) -> None:
    now = services.now_us()
    hour = now - now % HOUR_US
    store = services.audit_ledger.store
    _accesses(services, "staff:a", 3, hour - HOUR_US + 5)
    _accesses(services, "staff:b", 2, hour + 1)
    first = hourly_accesses(store, services.engine, now - 2 * HOUR_US, now + 1)
    assert {(c.hour_us, c.actor, c.count) for c in first} == {
        (hour - HOUR_US, "staff:a", 3),
        (hour, "staff:b", 2),
    }
    assert catch_up(store, services.engine, now) == 0, "nothing new: nothing counted again"
    _accesses(services, "staff:b", 4, hour + 2)
    # Another process, on its own services, catches up first; this one adds nothing twice.
    other = build_services(services.settings)
    try:
        assert catch_up(other.audit_ledger.store, other.engine, now) == 5
    finally:
        other.close()
    again = hourly_accesses(store, services.engine, now - 2 * HOUR_US, now + 1)
    assert {(c.hour_us, c.actor, c.count) for c in again} == {
        (hour - HOUR_US, "staff:a", 3),
        (hour, "staff:b", 6),
    }
