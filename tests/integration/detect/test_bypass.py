"""Gate bypass: data keys unwrapped through the key service directly (no gate, so no
audit entry) are found from the unwrap ledger; unwraps the gate made for reads are not."""

from __future__ import annotations

from carevault.detect import alerts_as_dicts
from carevault.detect.bypass import LAG_US, BypassCheck
from carevault.keys.cache import DataKeyCache
from carevault.keys.service import KeyService
from carevault.ledger.unwrap import LedgerUnwrapRecorder
from tests.integration.detect.conftest import Clinic


def test_unwraps_with_no_access_at_the_gate_are_a_bypass(clinic: Clinic) -> None:
    services = clinic.services
    assert services.keys is not None
    for patient in clinic.patients[:3]:
        assert clinic.read(clinic.desk, patient) == 200
    pseudonyms = services.vault.patient_pseudonyms(clinic.patients[10:14])
    own = KeyService(
        services.key_engine, services.keys.provider, DataKeyCache(0, 0),
        LedgerUnwrapRecorder(services.unwrap_ledger.writer), services.clock,
    )  # fmt: skip
    for pseudonym in pseudonyms.values():
        own.data_keys([pseudonym], principal="system:backup-agent", purpose="maintenance")
    # Unwraps younger than five seconds wait for their audit entry: let them age.
    clinic.clock.advance(LAG_US / 1_000_000 + 1)
    alerts = alerts_as_dicts(services)
    bypass = [a for a in alerts if a["detector"] == "gate-bypass"]
    assert len(bypass) == 1, alerts
    assert bypass[0]["severity"] == "critical"
    assert bypass[0]["patient_count"] == 4
    assert bypass[0]["case"] == "case:system:backup-agent"
    assert bypass[0]["action"] == "raise"
    assert bypass[0]["first_position"] is None  # the evidence is in the unwrap ledger


def test_young_unwraps_are_not_read_again_until_they_are_due(clinic: Clinic) -> None:
    """While every read unwraps a key, the last seconds of unwraps always wait for their
    audit entries: the check says there is nothing to do until the first of them is
    due, instead of reading them again at every batch."""
    services = clinic.services
    assert services.keys is not None
    own = KeyService(
        services.key_engine, services.keys.provider, DataKeyCache(0, 0),
        LedgerUnwrapRecorder(services.unwrap_ledger.writer), services.clock,
    )  # fmt: skip
    pseudonyms = services.vault.patient_pseudonyms(clinic.patients[20:22])
    for pseudonym in pseudonyms.values():
        own.data_keys([pseudonym], principal="system:backup-agent", purpose="maintenance")
    now = [services.now_us()]
    check = BypassCheck(
        services.engine, services.unwrap_ledger.store, services.audit_ledger.store,
        lambda: now[0],
    )  # fmt: skip
    before = check.progress()
    assert check.ready(before), "unwraps not judged yet: at first, look"
    assert check.check(before) == ([], None), "too young: left for later"
    assert not check.ready(check.progress()), "the same young unwraps: nothing to do"
    now[0] += LAG_US + 1_000_000
    assert check.ready(check.progress()), "due now"
    found, end = check.check()
    assert end is not None and end > before[0]
    assert any(f.detector == "gate-bypass" and len(f.patients) == 2 for f in found)


def test_an_incident_declared_from_a_bypass_alert_names_the_process_and_finds_its_reads(
    clinic: Clinic,
) -> None:
    from carevault.incidents import Actor, case_from_alert, declare_case, scope_document

    services = clinic.services
    assert services.keys is not None
    pseudonyms = services.vault.patient_pseudonyms(clinic.patients[30:34])
    own = KeyService(
        services.key_engine, services.keys.provider, DataKeyCache(0, 0),
        LedgerUnwrapRecorder(services.unwrap_ledger.writer), services.clock,
    )  # fmt: skip
    for pseudonym in pseudonyms.values():
        own.data_keys([pseudonym], principal="system:backup-agent", purpose="maintenance")
    # The detectors run late (an hour after the unwraps): the window still opens at them.
    clinic.clock.advance(3600)
    bypass = [a for a in alerts_as_dicts(services) if a["detector"] == "gate-bypass"]
    assert len(bypass) == 1
    case = case_from_alert(services, bypass[0]["id"])
    assert case["accounts"] == ["system:backup-agent"]
    incident = declare_case(services, Actor("staff:officer1"), case, alert_id=bypass[0]["id"])
    assert incident.compromised.accounts == ("system:backup-agent",)
    decrypted = scope_document(services, incident.incident_id)["tiers"]["decrypted"]
    assert sorted(line["patient"] for line in decrypted) == sorted(pseudonyms)


def test_a_bypass_found_a_few_keys_at_a_time_is_critical_once_three_patients_are_reached(
    clinic: Clinic,
) -> None:
    """The unwraps of one hour are judged in batches as they age: the alert gathers them,
    and turns critical when its total reaches three patients, as one batch of three is."""
    services = clinic.services
    assert services.keys is not None
    hour_us = 3_600_000_000
    # At the start of an hour: every batch below falls in the same one.
    clinic.clock.advance((hour_us - services.now_us() % hour_us) / 1_000_000 + 60)
    own = KeyService(
        services.key_engine, services.keys.provider, DataKeyCache(0, 0),
        LedgerUnwrapRecorder(services.unwrap_ledger.writer), services.clock,
    )  # fmt: skip
    pseudonyms = list(services.vault.patient_pseudonyms(clinic.patients[40:43]).values())
    severities = []
    for batch in ([pseudonyms[0]], pseudonyms[1:]):
        for pseudonym in batch:
            own.data_keys([pseudonym], principal="system:cron", purpose="maintenance")
        clinic.clock.advance(LAG_US / 1_000_000 + 1)
        bypass = [a for a in alerts_as_dicts(services) if a["detector"] == "gate-bypass"]
        assert len(bypass) == 1
        severities.append((bypass[0]["patient_count"], bypass[0]["severity"]))
    assert severities == [(1, "high"), (3, "critical")]
