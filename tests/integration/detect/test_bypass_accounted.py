"""Unwraps that the gate did not make but that are accounted for all the same: the
blind-index key every process opens at start, and a KEK rotation that re-wraps every
patient's key after its start was written in the audit ledger. Without that start entry
the same unwraps are a gate bypass."""

from __future__ import annotations

from carevault.bootstrap import Services
from carevault.detect.bypass import LAG_US, BypassCheck
from carevault.keys.service import INDEX_KEY_ID
from carevault.ledger.events import AuditEvent, Outcome, Tag

PATIENT_KEYS = ["p-alpha", "p-bravo", "p-charlie"]


def check(services: Services) -> list[str]:
    later = services.now_us() + 2 * LAG_US
    bypass = BypassCheck(
        services.engine,
        services.unwrap_ledger.store,
        services.audit_ledger.store,
        lambda: later,
    )
    findings, _ = bypass.check()
    return [key for finding in findings for key in finding.patients]


def rotate(services: Services, *, announced: bool) -> None:
    keys = services.keys
    assert keys is not None
    keys.create_data_keys(PATIENT_KEYS, "patient")
    if announced:
        services.audit.record(
            [
                AuditEvent(
                    tag=Tag.KEY_ROTATION_STARTED,
                    outcome=Outcome.SUCCESS,
                    at_us=services.now_us(),
                    principal="staff:officer",
                )
            ]
        )
    keys.provider.create_version()
    while keys.rewrap_batch(100):
        pass


def test_the_index_key_opened_at_start_is_no_bypass(services: Services) -> None:
    keys = services.keys
    assert keys is not None
    keys.ensure_data_key(INDEX_KEY_ID, "index", principal="system:carevault", purpose="start")
    keys.forget_cached()
    keys.ensure_data_key(INDEX_KEY_ID, "index", principal="system:carevault", purpose="start")
    assert check(services) == []


def test_an_announced_rotation_is_no_bypass(services: Services) -> None:
    rotate(services, announced=True)
    assert check(services) == []


def test_a_rotation_nobody_announced_is_a_bypass(services: Services) -> None:
    rotate(services, announced=False)
    assert set(check(services)) == set(PATIENT_KEYS)
