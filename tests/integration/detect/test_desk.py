"""A privacy officer does not handle what was raised about them (from an adversary's
pass): an officer who read past their release budget dismissed the alert about it with
their own code, and nothing was left open for another officer to see."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from carevault.detect import alerts_as_dicts
from carevault.detect.desk import OfficerCode, OfficerRefused
from carevault.domain.roles import Role
from carevault.ledger.events import AuditEvent, Outcome, Tag
from tests.integration.detect.conftest import (
    Clinic,
    clinic_patients,
    clinic_settings,
    opened_clinic,
)
from tests.support.staff import Staff, make_staff


@pytest.fixture
def clinic(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    settings = clinic_settings(backend, tmp_path, request, release_budget="privacy_officer=5/20")
    with opened_clinic(settings, clinic_patients()) as opened:
        yield opened


def _alert_about(clinic: Clinic, who: Staff) -> dict[str, Any]:
    statuses = [clinic.read(who, patient) for patient in clinic.patients[:7]]
    assert 429 in statuses
    mine = [a for a in alerts_as_dicts(clinic.services) if a["account"] == who.account.username]
    assert mine, "the budget refusal raised no alert"
    return mine[0]


def _dismiss(clinic: Clinic, who: Staff, alert_id: object) -> Any:
    return clinic.web.post_json(
        f"/admin/alerts/{alert_id}/dismiss",
        {"reason": "routine audit", "totp": who.totp()},
        **who.headers,
    )


def _status(clinic: Clinic, alert_id: object) -> str:
    [alert] = [a for a in alerts_as_dicts(clinic.services) if a["id"] == alert_id]
    return str(alert["status"])


def test_an_officer_cannot_dismiss_an_alert_about_themselves(clinic: Clinic) -> None:
    officer = clinic.officer
    alert = _alert_about(clinic, officer)
    answer = _dismiss(clinic, officer, alert["id"])
    if answer.status_code == 401:  # the step-up the alert asked for: the officer's own code
        stepped = clinic.web.post_json("/auth/step-up", {"totp": officer.totp()}, **officer.headers)
        assert stepped.status_code == 200, stepped.text
        answer = _dismiss(clinic, officer, alert["id"])
    assert answer.status_code == 403, answer.text
    assert "another privacy officer" in answer.text
    assert _status(clinic, alert["id"]) == "open"
    refusals = [
        AuditEvent.from_canonical(data) for _, data in clinic.services.audit_ledger.store.entries()
    ]
    assert any(
        event.tag is Tag.CONTAIN_REFUSED
        and event.outcome is Outcome.DENIED
        and "about them" in event.reason
        for event in refusals
    )


def test_another_officer_dismisses_it(clinic: Clinic) -> None:
    alert = _alert_about(clinic, clinic.officer)
    second = make_staff(clinic.services, Role.PRIVACY_OFFICER, ["clinic-a"])
    answer = _dismiss(clinic, second, alert["id"])
    assert answer.status_code == 200, answer.text
    assert _status(clinic, alert["id"]) == "dismissed"


def test_an_officer_cannot_lift_their_own_throttle(clinic: Clinic) -> None:
    officer = clinic.officer
    detection = clinic.services.detection
    assert detection is not None
    code = OfficerCode(officer.account.username, officer.totp())
    with pytest.raises(OfficerRefused, match="another privacy officer"):
        detection.desk.unthrottle(code, officer.account.username)
