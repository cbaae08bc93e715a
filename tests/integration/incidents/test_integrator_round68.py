"""Integrator round 68: with the application host (or the key service) compromised, the
decrypted tier is every data key unwrapped in the window, and it listed CareVault's own
keys as patients: ``index``, ``directory``, ``credentials``, ``incident-words`` (each a
line with ``patient_record_missing``, each counted as a person). On the demo (300
patients) the scope counted 304 people, and so would every regulator's report and the
notices' "unreachable" (HIPAA's substitute notice)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from carevault.bootstrap import build_services
from carevault.incidents import Actor, declare_case, scope_document
from carevault.keys.service import CREDENTIALS_KEY_ID, DIRECTORY_KEY_ID, INDEX_KEY_ID
from tests.integration.detect.conftest import (
    Clinic,
    clinic_patients,
    clinic_settings,
    opened_clinic,
)

pytestmark = pytest.mark.postgres

OWN_KEYS = {DIRECTORY_KEY_ID, CREDENTIALS_KEY_ID, INDEX_KEY_ID, "incident-words"}


@pytest.fixture
def clinic(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    """The detectors' clinic (tests/integration/detect): a desk, an officer, 45 patients."""
    with opened_clinic(clinic_settings(backend, tmp_path, request), clinic_patients()) as opened:
        yield opened


def test_a_compromised_host_decrypts_patients_not_carevaults_own_keys(clinic: Clinic) -> None:
    services = clinic.services
    assert services.keys is not None
    officer = Actor(f"staff:{clinic.officer.account.username}")
    # The window opens before the clinic was set up: its own keys were unwrapped in it.
    found = declare_case(services, officer, {"title": "Host suspect", "host": True,
                                             "since": "2026-01-01T00:00:00+00:00"})  # fmt: skip
    for patient in clinic.patients[:3]:
        assert clinic.read(clinic.desk, patient) == 200
    # The officer computes the scope from the CLI: a process of its own, which unwraps
    # the shared keys as it starts and the incident's words' key as it loads it.
    other = build_services(services.settings)
    try:
        document = scope_document(other, found.incident_id)
    finally:
        other.close()
    decrypted = document["tiers"]["decrypted"]
    listed = {line["patient"] for line in decrypted}
    assert not listed & OWN_KEYS, sorted(listed & OWN_KEYS)
    assert all(not line.get("patient_record_missing") for line in decrypted)
    pseudonyms = set(services.vault.patient_pseudonyms(clinic.patients).values())
    assert {line["pseudonym"] for line in decrypted} <= pseudonyms
    assert document["counts"]["people"]["total"] <= len(clinic.patients)
