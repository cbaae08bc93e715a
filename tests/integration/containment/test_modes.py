"""Every containment mode, through the HTTP API as the console uses it: while it is on,
the PHI endpoints refuse and scheduling keeps working; after release all is as before.
Each switch needs a privacy officer with a fresh TOTP code, and is recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.web.app import create_app
from tests.support.client import FHIR_JSON, FhirTestClient
from tests.support.staff import Staff, make_staff

TODAY = date.today().isoformat()


@dataclass
class Clinic:
    services: Services
    web: FhirTestClient
    desk: Staff
    doctor: Staff
    officer: Staff
    second_officer: Staff
    patient: str
    other_patient: str
    no_visit_patient: str

    def as_(self, who: Staff, method: str, path: str, body: Any = None) -> Any:
        headers = dict(who.headers)
        if body is not None:
            headers.update(FHIR_JSON)
            return self.web.request(method, path, content=json.dumps(body), headers=headers)
        return self.web.request(method, path, headers=headers)

    def phi_requests(self) -> dict[str, Any]:
        """The PHI endpoints, as the physician with a care relationship calls them."""
        p = self.patient
        observation = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "pulse"},
            "subject": {"reference": f"Patient/{p}"},
        }
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"resource": observation, "request": {"method": "POST", "url": "Observation"}}
            ],
        }
        return {
            "read": self.as_(self.doctor, "GET", f"/fhir/Observation?patient={p}"),
            "read patient": self.as_(self.doctor, "GET", f"/fhir/Patient/{self.no_visit_patient}"),
            "search": self.as_(self.doctor, "GET", "/fhir/Patient?family=visit"),
            "history": self.as_(self.doctor, "GET", f"/fhir/Patient/{p}/_history"),
            "everything": self.as_(self.doctor, "GET", f"/fhir/Patient/{p}/$everything"),
            "write": self.as_(self.doctor, "POST", "/fhir/Observation", observation),
            "bundle": self.as_(self.doctor, "POST", "/fhir", bundle),
        }

    def scheduling_requests(self) -> dict[str, Any]:
        appointment = {
            "resourceType": "Appointment",
            "status": "booked",
            "start": f"{TODAY}T15:00:00+08:00",
            "end": f"{TODAY}T15:15:00+08:00",
            "participant": [
                {"actor": {"reference": f"Patient/{self.patient}"}, "status": "accepted"}
            ],
        }
        return {
            "appointments": self.as_(self.desk, "GET", f"/fhir/Appointment?patient={self.patient}"),
            "clinic": self.as_(self.desk, "GET", "/fhir/Organization/clinic-a"),
            "book": self.as_(self.desk, "POST", "/fhir/Appointment", appointment),
        }

    def start(self, mode: str, target: str | None = None, officer: Staff | None = None) -> int:
        who = officer or self.officer
        body = {"mode": mode, "target": target, "reason": "incident 42", "totp": who.totp()}
        response = self.web.post("/admin/containment", json=body, headers=who.headers)
        assert response.status_code == 201, response.text
        containment_id: int = response.json()["id"]
        return containment_id

    def release(self, containment_id: int) -> None:
        body = {"reason": "contained", "totp": self.officer.totp()}
        response = self.web.post(
            f"/admin/containment/{containment_id}/release", json=body, headers=self.officer.headers
        )
        assert response.status_code == 200, response.text


def create(web: FhirTestClient, who: Staff, body: dict[str, Any]) -> str:
    response = web.post_json(f"/fhir/{body['resourceType']}", body, **who.headers)
    assert response.status_code == 201, response.text
    created: str = response.json()["id"]
    return created


@pytest.fixture
def clinic(services: Services, api: FhirTestClient) -> Iterator[Clinic]:
    for clinic_id in ("clinic-a", "clinic-b"):
        api.put_json(
            f"/fhir/Organization/{clinic_id}",
            {"resourceType": "Organization", "id": clinic_id, "name": clinic_id},
        )
    desk = make_staff(services, Role.FRONT_DESK, ["clinic-a"])
    doctor = make_staff(services, Role.PHYSICIAN, ["clinic-a"])
    officer = make_staff(services, Role.PRIVACY_OFFICER, ["clinic-a"])
    second = make_staff(services, Role.PRIVACY_OFFICER, ["clinic-a"])
    with FhirTestClient(create_app(services.settings, services)) as web:

        def patient(family: str) -> str:
            return create(
                web,
                desk,
                {
                    "resourceType": "Patient",
                    "name": [{"family": family, "given": ["Siu Ming"]}],
                    "telecom": [{"system": "phone", "value": "+852 9123 4567"}],
                },
            )

        someone, nobody = patient("Visit"), patient("Novisit")
        create(
            web,
            desk,
            {
                "resourceType": "Appointment",
                "status": "booked",
                "start": f"{TODAY}T10:00:00+08:00",
                "end": f"{TODAY}T10:15:00+08:00",
                "participant": [
                    {"actor": {"reference": f"Patient/{someone}"}, "status": "accepted"}
                ],
            },
        )
        create(
            web,
            desk,
            {
                "resourceType": "Encounter",
                "status": "in-progress",
                "class": {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "AMB",
                },
                "subject": {"reference": f"Patient/{someone}"},
                "serviceProvider": {"reference": "Organization/clinic-a"},
                "period": {"start": f"{TODAY}T10:00:00+08:00"},
            },
        )
        other = api.post_json(
            "/fhir/Patient",
            {
                "resourceType": "Patient",
                "name": [{"family": "Elsewhere"}],
                "managingOrganization": {"reference": "Organization/clinic-b"},
            },
        ).json()["id"]
        yield Clinic(services, web, desk, doctor, officer, second, someone, other, nobody)


def statuses(responses: dict[str, Any]) -> dict[str, int]:
    return {name: response.status_code for name, response in responses.items()}


def assert_all_open(clinic: Clinic) -> None:
    phi = statuses(clinic.phi_requests())
    assert all(200 <= code < 300 for code in phi.values()), phi
    scheduling = statuses(clinic.scheduling_requests())
    assert all(200 <= code < 300 for code in scheduling.values()), scheduling


def test_phi_offline_keeps_scheduling(clinic: Clinic) -> None:
    assert_all_open(clinic)
    mode = clinic.start("phi-offline")
    refused = clinic.phi_requests()
    for name, response in refused.items():
        assert response.status_code == 503, name
        assert "offline for security reasons" in response.text, name
        assert "Siu Ming" not in response.text and "9123" not in response.text
    assert all(code in (200, 201) for code in statuses(clinic.scheduling_requests()).values())
    # The day's patients keep their names on the appointment list, nothing more.
    shown = clinic.as_(clinic.desk, "GET", f"/fhir/Patient/{clinic.patient}")
    assert shown.status_code == 200
    body = shown.json()
    assert body["name"][0]["family"] == "Visit" and "telecom" not in body
    assert any(label["code"] == "SUBSETTED" for label in body["meta"]["security"])
    # The system itself (CLI, seeding) is held to it too.
    assert clinic.web.get(f"/fhir/Patient/{clinic.no_visit_patient}").status_code == 401
    clinic.release(mode)
    assert_all_open(clinic)


def test_emergency_access_needs_a_second_privacy_officer(clinic: Clinic) -> None:
    mode = clinic.start("phi-offline")
    asked = clinic.as_(
        clinic.doctor,
        "POST",
        f"/fhir/Patient/{clinic.no_visit_patient}/$emergency-access",
        {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "reason", "valueCode": "emergency-treatment"},
                {"name": "text", "valueString": "collapsed in the waiting room"},
            ],
        },
    )
    assert asked.status_code == 202, asked.text
    grant = asked.json()["parameter"][0]["valueString"]
    path = f"/fhir/Patient/{clinic.no_visit_patient}"
    assert clinic.as_(clinic.doctor, "GET", path).status_code == 503
    same = clinic.web.post(
        f"/admin/emergency/{grant}/approve",
        json={"totp": clinic.officer.totp()},
        headers=clinic.officer.headers,
    )
    assert same.status_code == 403  # the officer who took data offline cannot approve
    approved = clinic.web.post(
        f"/admin/emergency/{grant}/approve",
        json={"totp": clinic.second_officer.totp()},
        headers=clinic.second_officer.headers,
    )
    assert approved.status_code == 200, approved.text
    opened = clinic.as_(clinic.doctor, "GET", path)
    assert opened.status_code == 200 and opened.json()["name"][0]["family"] == "Novisit"
    assert (
        clinic.as_(clinic.doctor, "GET", f"/fhir/Patient/{clinic.patient}/_history").status_code
        == 503
    )
    clinic.release(mode)


def test_read_only_refuses_every_write(clinic: Clinic) -> None:
    mode = clinic.start("read-only")
    phi = statuses(clinic.phi_requests())
    assert phi.pop("write") == 503 and phi.pop("bundle") == 503
    assert all(code == 200 for code in phi.values()), phi
    scheduling = statuses(clinic.scheduling_requests())
    assert scheduling.pop("book") == 503
    assert all(code == 200 for code in scheduling.values())
    clinic.release(mode)
    assert_all_open(clinic)


def test_key_lockdown_decrypts_nothing(clinic: Clinic) -> None:
    mode = clinic.start("key-lockdown")
    for name, code in {
        **statuses(clinic.phi_requests()),
        **statuses(clinic.scheduling_requests()),
    }.items():
        assert code == 503, name
    clinic.release(mode)
    assert_all_open(clinic)


def test_a_clinic_lock_leaves_other_clinics_working(clinic: Clinic, api: FhirTestClient) -> None:
    mode = clinic.start("clinic-lock", "clinic-a")
    assert clinic.as_(clinic.doctor, "GET", f"/fhir/Patient/{clinic.patient}").status_code == 503
    assert api.get(f"/fhir/Patient/{clinic.patient}").status_code == 503
    assert api.get(f"/fhir/Patient/{clinic.other_patient}").status_code == 200
    clinic.release(mode)
    assert_all_open(clinic)


def test_suspending_an_account_ends_its_tokens(clinic: Clinic) -> None:
    assert clinic.as_(clinic.desk, "GET", "/fhir/Organization/clinic-a").status_code == 200
    mode = clinic.start("account-suspended", clinic.desk.account.username)
    assert clinic.as_(clinic.desk, "GET", "/fhir/Organization/clinic-a").status_code == 401
    clinic.release(mode)
    assert not clinic.services.accounts.get(clinic.desk.account.account_id).suspended  # type: ignore[union-attr]


def test_a_blocked_range_is_refused_at_the_door(clinic: Clinic) -> None:
    mode = clinic.start("block-address", "203.0.113.0/24")
    app = clinic.web.app
    with FhirTestClient(app, client=("203.0.113.9", 5555)) as outsider:
        refused = outsider.get("/fhir/Organization/clinic-a", headers=clinic.desk.headers)
        assert refused.status_code == 403
    assert clinic.as_(clinic.desk, "GET", "/fhir/Organization/clinic-a").status_code == 200
    clinic.release(mode)


def test_a_blocked_ipv4_range_is_refused_when_seen_over_ipv6(clinic: Clinic) -> None:
    """Adversary round 44: a server listening on ``::`` with several workers (one
    dual-stack socket) sees an IPv4 client as ``::ffff:203.0.113.9``, which a block of
    ``203.0.113.0/24`` let through: the blocked intruder went on reading."""
    mode = clinic.start("block-address", "203.0.113.0/24")
    app = clinic.web.app
    with FhirTestClient(app, client=("::ffff:203.0.113.9", 5555)) as outsider:
        refused = outsider.get("/fhir/Organization/clinic-a", headers=clinic.desk.headers)
        assert refused.status_code == 403
    clinic.release(mode)


def test_only_a_privacy_officer_with_a_fresh_code_may_contain(clinic: Clinic) -> None:
    services = clinic.services
    before = services.audit_ledger.checkpoints.latest()
    body = {"mode": "phi-offline", "reason": "x", "totp": clinic.doctor.totp()}
    assert (
        clinic.web.post("/admin/containment", json=body, headers=clinic.doctor.headers).status_code
        == 403
    )
    body["totp"] = "000000"
    assert (
        clinic.web.post("/admin/containment", json=body, headers=clinic.officer.headers).status_code
        == 403
    )
    code = clinic.officer.totp()
    body["totp"] = code
    assert (
        clinic.web.post("/admin/containment", json=body, headers=clinic.officer.headers).status_code
        == 201
    )
    assert (
        clinic.web.post("/admin/containment", json=body, headers=clinic.officer.headers).status_code
        == 403
    )
    entries = [json.loads(data) for _, data in services.audit_ledger.store.entries()]
    refused = [entry for entry in entries if entry["tag"] == "containment:mode:refused"]
    assert len(refused) == 2  # the officer's stale and reused codes
    # The doctor is refused at the door of the officer's API, and that is recorded too.
    doctor = [e for e in entries if e["tag"] == "web:request:refused"]
    assert [e["principal"] for e in doctor] == [f"staff:{clinic.doctor.login.username}"]
    assert [entry["tag"] for entry in entries].count("containment:mode:started") == 1
    after = services.audit_ledger.checkpoints.latest()
    assert after is not None and (before is None or after.size > before.size)
    assert after.reason.startswith("containment")
    state = clinic.web.get("/admin/containment", headers=clinic.officer.headers).json()
    assert [item["mode"] for item in state["active"]] == ["phi-offline"]
