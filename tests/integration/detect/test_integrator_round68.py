"""Integrator round 68: declaring an incident raised a high "gate-bypass" alert naming a
patient ``incident-words``. Stop 54 seals an incident's words under a key of their own,
unwrapped by ``system:incidents`` with no gate entry, and the detector took every key
but four shared ones for a patient's (the key store's ``kind`` now says whose it is)."""

from __future__ import annotations

import pytest

from carevault.bootstrap import build_services
from carevault.detect import alerts_as_dicts
from carevault.detect.bypass import LAG_US
from carevault.incidents import Actor, declare_case, incidents_for
from carevault.keys.cache import DataKeyCache
from carevault.keys.service import KeyService
from carevault.ledger.unwrap import LedgerUnwrapRecorder
from tests.integration.detect.conftest import Clinic

pytestmark = pytest.mark.postgres


def test_an_incidents_sealed_words_are_no_patients_key_to_the_bypass_detector(
    clinic: Clinic,
) -> None:
    services = clinic.services
    assert services.keys is not None
    officer = Actor(f"staff:{clinic.officer.account.username}")
    found = declare_case(services, officer, {"title": "Desk login phished", "accounts": [
        clinic.desk.account.username], "since": "2026-01-01T00:00:00+00:00"})  # fmt: skip
    # Another process (``carevault incident show``, a report, the console's worker) loads
    # it: its key service unwraps the words' key, as ``system:incidents``.
    other = build_services(services.settings)
    try:
        assert incidents_for(other).get(found.incident_id).title == "Desk login phished"
    finally:
        other.close()
    clinic.clock.advance(LAG_US / 1_000_000 + 1)
    bypass = [a for a in alerts_as_dicts(services) if a["detector"] == "gate-bypass"]
    assert bypass == [], bypass
    # A real bypass beside it is still found, and names the patients only.
    own = KeyService(
        services.key_engine, services.keys.provider, DataKeyCache(0, 0),
        LedgerUnwrapRecorder(services.unwrap_ledger.writer), services.clock,
    )  # fmt: skip
    pseudonyms = services.vault.patient_pseudonyms(clinic.patients[:2])
    for pseudonym in pseudonyms.values():
        own.data_keys([pseudonym], principal="system:incidents", purpose="maintenance")
    clinic.clock.advance(LAG_US / 1_000_000 + 1)
    bypass = [a for a in alerts_as_dicts(services) if a["detector"] == "gate-bypass"]
    assert len(bypass) == 1 and bypass[0]["patient_count"] == 2, bypass
