"""In-session step-up through the HTTP API (SQLite and PostgreSQL): a medium alert pauses
the account's session instead of ending it; the next request gets a 401 whose
OperationOutcome says a fresh TOTP code is needed; presenting one for the session
(POST /auth/step-up) lets the same token go on. A wrong code does not."""

from __future__ import annotations

from carevault.detect import alerts_as_dicts
from carevault.detect.desk import OfficerCode
from carevault.domain.hkid import check_digit
from carevault.fhir.normalise import HKID_SYSTEM
from carevault.ledger.events import AuditEvent, Tag
from tests.integration.detect.conftest import Clinic

HKID = f"K000001({check_digit('K', '000001')})"


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
