"""Responses that must hold against whoever cannot present a fresh code: a confidential
app bound to an integration account."""

from __future__ import annotations

from pathlib import Path

import pytest

from carevault.detect import alerts_as_dicts
from tests.integration.detect.conftest import (
    FEED,
    bound_feed,
    clinic_patients,
    clinic_settings,
    feed_token,
    opened_clinic,
)
from tests.integration.detect.test_step_up import OWN_RECORD


def test_a_bound_integration_apps_medium_alert_revokes_it(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # A confidential app acting for an integration account has no one to present a code
    # either: were its session only paused, it would take a new token with its secret.
    settings = clinic_settings(backend, tmp_path, request, detect_kin_grace_seconds=0)
    with opened_clinic(settings, clinic_patients(4)) as clinic:
        services = clinic.services
        secret = bound_feed(clinic)
        token = feed_token(clinic, secret).json()["access_token"]
        headers = {"authorization": f"Bearer {token}"}
        # Twenty refused writes in ten minutes: a medium ``denials`` alert.
        for _ in range(20):
            refused = clinic.web.post_json("/fhir/Patient", OWN_RECORD, **headers)
            assert refused.status_code == 403, refused.text
        alerts = alerts_as_dicts(services)
        assert [(a["detector"], a["severity"], a["client"]) for a in alerts] == [
            ("denials", "medium", FEED)
        ]
        assert alerts[0]["action"] == "suspend"
        read = clinic.web.get(f"/fhir/Patient/{clinic.patients[0]}", headers=headers)
        assert read.status_code == 401, read.text
        again = feed_token(clinic, secret)
        assert again.status_code == 401, again.text
