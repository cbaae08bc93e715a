"""In-session step-up through the HTTP API (SQLite and PostgreSQL): a medium alert pauses
the account's session instead of ending it; the next request gets a 401 whose
OperationOutcome says a fresh TOTP code is needed; presenting one for the session
(POST /auth/step-up) lets the same token go on. A wrong code does not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from carevault.bootstrap import build_services
from carevault.config import Settings
from carevault.detect import alerts_as_dicts
from carevault.detect.desk import OfficerCode
from carevault.domain.hkid import check_digit
from carevault.domain.roles import Role
from carevault.fhir.normalise import HKID_SYSTEM
from carevault.ledger.events import AuditEvent, Tag
from carevault.web.app import create_app
from tests.integration.detect.conftest import (
    Clinic,
    clinic_patients,
    clinic_settings,
    opened_clinic,
    watched_settings,
)
from tests.support.client import FhirTestClient
from tests.support.staff import Staff, make_staff

HKID = f"K000001({check_digit('K', '000001')})"
#: The front desk's own record, as registered: HR identified them by this HKID.
OWN_RECORD: dict[str, Any] = {
    "resourceType": "Patient",
    "name": [{"family": "Wong", "given": ["Mei Ling"]}],
    "identifier": [{"system": HKID_SYSTEM, "value": HKID}],
    "managingOrganization": {"reference": "Organization/clinic-a"},
}


def test_a_medium_alert_asks_for_a_fresh_totp_before_more_data(clinic: Clinic) -> None:
    detection = clinic.services.detection
    assert detection is not None
    officer = OfficerCode(clinic.officer.account.username, clinic.officer.totp())
    detection.desk.identify(officer, clinic.desk.account.username, hkid=HKID)
    response = clinic.web.post_json(
        "/fhir/Patient",
        {
            "resourceType": "Patient",
            "name": [{"family": "Wong", "given": ["Mei Ling"]}],
            "identifier": [{"system": HKID_SYSTEM, "value": HKID}],
            "managingOrganization": {"reference": "Organization/clinic-a"},
        },
        **clinic.desk.headers,
    )
    assert response.status_code == 201, response.text
    own = response.json()["id"]
    assert clinic.read(clinic.desk, own) == 200
    (alert,) = alerts_as_dicts(clinic.services)
    assert (alert["detector"], alert["severity"], alert["action"]) == (
        "own-record", "medium", "step-up",
    )  # fmt: skip

    paused = clinic.web.get(f"/fhir/Patient/{clinic.patients[0]}", headers=clinic.desk.headers)
    assert paused.status_code == 401
    assert "insufficient_user_authentication" in paused.headers["www-authenticate"]
    (issue,) = paused.json()["issue"]
    assert issue["code"] == "login" and "step-up required" in issue["diagnostics"]
    assert "POST /auth/step-up" in issue["diagnostics"]

    wrong = clinic.web.post_json("/auth/step-up", {"totp": "000000"}, **clinic.desk.headers)
    assert wrong.status_code == 401
    assert clinic.read(clinic.desk, clinic.patients[0]) == 401
    assert clinic.web.post_json("/auth/step-up", {}, **clinic.desk.headers).status_code == 400

    done = clinic.web.post_json(
        "/auth/step-up", {"totp": clinic.desk.totp()}, **clinic.desk.headers
    )
    assert done.status_code == 200, done.text
    assert clinic.read(clinic.desk, clinic.patients[0]) == 200
    store = clinic.services.audit_ledger.store
    outcomes = [
        event.outcome
        for _, data in store.entries(0)
        if (event := AuditEvent.from_canonical(data)).tag == Tag.AUTH_STEPPED_UP
    ]
    assert outcomes == ["denied", "success"]


def _registered_by_a_colleague(clinic: Clinic, count: int) -> list[str]:
    """``count`` patients another front desk registered: records the desk did not write
    (the watch does not count those it created itself)."""
    colleague = make_staff(clinic.services, Role.FRONT_DESK, ["clinic-a"])
    made = []
    for body in clinic_patients(count, family="Lee"):
        response = clinic.web.post_json("/fhir/Patient", body, **colleague.headers)
        assert response.status_code == 201, response.text
        made.append(str(response.json()["id"]))
    return made


def _step_up_after_opening_own_record(clinic: Clinic, who: Staff | None = None) -> None:
    """``who`` (the desk by default) opens their own patient record, which the desk
    registered (HR gave their HKID): a medium alert, the session paused; then a fresh
    code, as the person or whoever holds their TOTP seed."""
    detection = clinic.services.detection
    assert detection is not None
    person = who or clinic.desk
    officer = OfficerCode(clinic.officer.account.username, clinic.officer.totp())
    detection.desk.identify(officer, person.account.username, hkid=HKID)
    own = clinic.web.post_json("/fhir/Patient", OWN_RECORD, **clinic.desk.headers)
    assert own.status_code == 201, own.text
    assert clinic.read(person, own.json()["id"]) == 200
    assert [a["action"] for a in alerts_as_dicts(clinic.services)] == ["step-up"]
    stepped = clinic.web.post_json("/auth/step-up", {"totp": person.totp()}, **person.headers)
    assert stepped.status_code == 200, stepped.text


@pytest.fixture
def watched(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """A clinic whose watch after a step-up allows three unexplained patients."""
    return watched_settings(backend, tmp_path, request)


def test_reading_on_after_a_step_up_suspends_the_account(watched: Settings) -> None:
    # Whoever holds the password and the TOTP seed (phished together) passes the step-up:
    # the watch that follows it judges what the account opens next, not the code.
    with opened_clinic(watched, clinic_patients(2)) as clinic:
        others = _registered_by_a_colleague(clinic, 5)
        _step_up_after_opening_own_record(clinic)
        # Patients the desk registered itself are not counted: it wrote them.
        for patient in clinic.patients:
            assert clinic.read(clinic.desk, patient) == 200

        # Three patients no care relationship explains: the watch's allowance.
        for patient in others[:3]:
            assert clinic.read(clinic.desk, patient) == 200
        assert [a["detector"] for a in alerts_as_dicts(clinic.services)] == ["own-record"]
        assert clinic.read(clinic.desk, others[3]) == 200
        alerts = {a["detector"]: a for a in alerts_as_dicts(clinic.services)}
        watch = alerts["after-step-up"]
        assert (watch["severity"], watch["action"], watch["account"]) == (
            "high", "suspend", clinic.desk.account.username,
        )  # fmt: skip
        assert watch["patient_count"] == 4
        assert "not why it reads" in watch["explanation"]
        assert clinic.read(clinic.desk, others[4]) == 401
        suspended = clinic.services.accounts.get(clinic.desk.account.account_id)
        assert suspended is not None and suspended.suspended


def test_the_watch_after_a_step_up_survives_a_restart(watched: Settings) -> None:
    with opened_clinic(watched, clinic_patients(0)) as clinic:
        others = _registered_by_a_colleague(clinic, 4)
        _step_up_after_opening_own_record(clinic)
        for patient in others[:2]:
            assert clinic.read(clinic.desk, patient) == 200
        assert len(alerts_as_dicts(clinic.services)) == 1  # judged past the step-up
        clinic.services.close()  # the server restarts: the watch is rebuilt from the ledger
        again = build_services(watched)
        try:
            with FhirTestClient(create_app(again.settings, again)) as web:
                for patient in others[2:4]:
                    got = web.get(f"/fhir/Patient/{patient}", headers=clinic.desk.headers)
                    assert got.status_code == 200, got.text
            alerts = {a["detector"]: a for a in alerts_as_dicts(again)}
            assert alerts["after-step-up"]["patient_count"] == 4
            assert alerts["after-step-up"]["action"] == "suspend"
        finally:
            again.close()


def test_a_privacy_officer_is_suspended_while_another_officer_can_undo_it(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # A phished officer passes every step-up and reads every clinic's patients: they are
    # suspended like anyone, as long as someone is left to release them.
    settings = clinic_settings(backend, tmp_path, request, release_budget="privacy_officer=2/10")
    with opened_clinic(settings, clinic_patients(6)) as clinic:
        second = make_staff(clinic.services, Role.PRIVACY_OFFICER, ["clinic-a"])
        first = clinic.officer
        statuses = [clinic.read(first, patient) for patient in clinic.patients[:3]]
        assert statuses == [200, 200, 429]
        (alert,) = alerts_as_dicts(clinic.services)
        assert (alert["detector"], alert["account"], alert["action"]) == (
            "release-budget", first.account.username, "suspend",
        )  # fmt: skip
        assert clinic.read(first, clinic.patients[0]) == 401
        # The other officer is now the last one standing: paused, never suspended.
        statuses = [clinic.read(second, patient) for patient in clinic.patients[3:6]]
        assert statuses == [200, 200, 429]
        actions = {a["account"]: a["action"] for a in alerts_as_dicts(clinic.services)}
        assert actions[second.account.username] == "step-up"
        still = clinic.services.accounts.get(second.account.account_id)
        assert still is not None and not still.suspended
