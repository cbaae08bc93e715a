"""Adversary round 59 (officers): an incident declared from an alert about oneself, with
a window that ends inside the alert's evidence, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.incidents import Actor, IncidentError, case_from_alert, declare_case, incidents_for
from tests.integration.incidents.test_adversary_round58_officers import (
    _officer_read_and_alerted,
    _staff,
)

pytestmark = pytest.mark.postgres


def test_an_incident_declared_from_an_alert_ends_after_its_last_access(
    services: Services,
) -> None:
    """Hole (round 59): mallory, the officer an alert is about (three patients read at
    00:00, 00:01 and 00:02 on 1 January), declared an incident from it opening at the
    first read and ending at 00:00:30 (``--until`` on the CLI, ``until`` in the API's
    body, which win over the open case's): round 58 refused only an end before the first
    access, so the incident stood for the alert with one patient in its scope, and
    widening it was left to a colleague who had no reason to. Refused, nothing declared;
    an end after the last access, or none, is taken."""
    _staff(services, "mallory", Role.PRIVACY_OFFICER, None)
    alert_id = _officer_read_and_alerted(services)
    mallory = Actor("staff:mallory")
    own = case_from_alert(services, alert_id)
    for until in ("2026-01-01T00:00:30+00:00", "2026-01-01T00:02:00+00:00"):
        with pytest.raises(IncidentError, match="ends .*never earlier"):
            declare_case(services, mallory, {**own, "until": until}, alert_id=alert_id)
    assert incidents_for(services).all() == []
    given = case_from_alert(services, alert_id, {"until": "2026-01-01T00:00:30+00:00"})
    with pytest.raises(IncidentError, match="never earlier"):
        declare_case(services, mallory, given, alert_id=alert_id)
    assert incidents_for(services).all() == []

    later = {**own, "until": "2026-01-01T00:02:01+00:00"}
    declared = declare_case(services, mallory, later, alert_id=alert_id)
    assert declared.alert_id == alert_id
    assert declare_case(services, mallory, own, alert_id=alert_id).until_us is None
