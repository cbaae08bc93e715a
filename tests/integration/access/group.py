"""Two clinics of a group, their staff with real tokens, and a patient of each: the
setting in which an insider of one clinic tries to reach the other clinic's patients.

Tuen Mun (``clinic-tm``) is the insider's clinic; Tsuen Wan (``clinic-tw``) the other.
Each patient has a visit at their home clinic (so its clinicians care for them), an HKID
and a birth date (what they would show at a front desk), and an observation.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.ledger.events import AuditEvent, Tag
from carevault.web.app import create_app
from tests.support.client import FHIR_JSON, FhirTestClient
from tests.support.staff import Staff, make_staff

TM, TW = "clinic-tm", "clinic-tw"
HKID_SYSTEM = "http://carevault.hk/sid/hkid"
TODAY = date.today()


@dataclass(frozen=True)
class Patient:
    id: str
    hkid: str
    birth_date: str
    observation: str


@dataclass
class Group:
    services: Services
    web: FhirTestClient
    desk_tm: Staff
    doctor_tm: Staff
    desk_tw: Staff
    doctor_tw: Staff
    officer: Staff
    tm_patient: Patient
    tw_patient: Patient

    def call(self, who: Staff, method: str, path: str, body: Any = None) -> Any:
        headers = dict(who.headers)
        if body is None:
            return self.web.request(method, path, headers=headers)
        headers.update(FHIR_JSON)
        return self.web.request(method, path, content=json.dumps(body), headers=headers)

    def events(self, tag: Tag | None = None) -> list[AuditEvent]:
        found = [
            AuditEvent.from_canonical(data)
            for _, data in self.services.audit_ledger.store.entries()
        ]
        return [event for event in found if tag is None or event.tag == tag]


def encounter(
    patient: str, clinic: str, practitioner: str | None = None, day: date = TODAY
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"Patient/{patient}"},
        "serviceProvider": {"reference": f"Organization/{clinic}"},
        "period": {"start": f"{day.isoformat()}T09:00:00+08:00"},
    }
    if practitioner:
        body["participant"] = [{"individual": {"reference": f"Practitioner/{practitioner}"}}]
    return body


def booked_today(
    patient: str, clinic: str, practitioner: str | None = None, **more: Any
) -> dict[str, Any]:
    """A booking of ``patient`` at ``clinic`` (with ``practitioner``), today at 10:00;
    ``more``: other elements of the Appointment."""
    participants = [
        {"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"},
        {"actor": {"reference": f"Organization/{clinic}"}, "status": "accepted"},
    ]
    if practitioner:
        participants.append(
            {"actor": {"reference": f"Practitioner/{practitioner}"}, "status": "accepted"}
        )
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "start": f"{TODAY.isoformat()}T10:00:00+08:00",
        "end": f"{TODAY.isoformat()}T10:15:00+08:00",
        "participant": participants,
        **more,
    }


def observation(patient: str, text: str = "HbA1c 7.2 %") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": text},
        "subject": {"reference": f"Patient/{patient}"},
    }


def care_team(patient: str, member: str, clinic: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "CareTeam",
        "status": "active",
        "subject": {"reference": f"Patient/{patient}"},
        "participant": [{"member": {"reference": f"Practitioner/{member}"}}],
    }
    if clinic:
        body["managingOrganization"] = [{"reference": f"Organization/{clinic}"}]
    return body


def referral(patient: str, performer: str) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "code": {"text": "endocrinology review"},
        "subject": {"reference": f"Patient/{patient}"},
        "authoredOn": f"{TODAY.isoformat()}T09:00:00+08:00",
        "performer": [{"reference": performer}],
    }


ICD10 = "http://hl7.org/fhir/sid/icd-10"
FLU = {"coding": [{"system": ICD10, "code": "J10"}]}
HIV = {"coding": [{"system": ICD10, "code": "B20"}]}


def self_paid_claim(patient: str, **more: Any) -> dict[str, Any]:
    """A claim of Tuen Mun for ``patient``'s visit (self-paid), with ``more``."""
    return {
        "resourceType": "Claim",
        "status": "active",
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                    "code": "professional",
                }
            ]
        },
        "use": "claim",
        "patient": {"reference": f"Patient/{patient}"},
        "created": TODAY.isoformat(),
        "provider": {"reference": f"Organization/{TM}"},
        "priority": {"coding": [{"code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"display": "Self-pay"}}],
        **more,
    }


#: A claim's lines: a visit fee, and an HIV-1 viral load (LOINC 25836-8).
FEE_LINE = {
    "sequence": 1,
    "productOrService": {"coding": [{"system": "urn:fees", "code": "GP01"}]},
    "net": {"value": 300, "currency": "HKD"},
}
HIV_TEST_LINE = {
    "sequence": 2,
    "productOrService": {"coding": [{"system": "http://loinc.org", "code": "25836-8"}]},
    "net": {"value": 900, "currency": "HKD"},
}


#: A coverage's types (v3 ActCode): an HIV-AIDS programme, and extended healthcare.
HIV_PROGRAMME = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "HIVAIDS",
            "display": "HIV-AIDS program",
        }
    ]
}
EXTENDED_HEALTHCARE = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "EHCPOL",
            "display": "extended healthcare",
        }
    ]
}


def coverage(patient: str, kind: dict[str, Any], **more: Any) -> dict[str, Any]:
    """A Coverage of ``patient`` of the type ``kind``, paid by Tuen Mun's payor, with
    ``more``."""
    return {
        "resourceType": "Coverage",
        "status": "active",
        "type": kind,
        "subscriberId": "HK-778812",
        "beneficiary": {"reference": f"Patient/{patient}"},
        "period": {"start": TODAY.isoformat()},
        "payor": [{"display": "Department of Health"}],
        **more,
    }


def doctors_condition(group: Group, code: dict[str, Any]) -> str:
    """A Condition coded ``code`` that Tuen Mun's doctor records for its patient; its id."""
    body = {
        "resourceType": "Condition",
        "code": code,
        "subject": {"reference": f"Patient/{group.tm_patient.id}"},
    }
    created = group.call(group.doctor_tm, "POST", "/fhir/Condition", body)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def created(api: FhirTestClient, body: dict[str, Any]) -> str:
    """The id of ``body`` created as the system (201, or the test fails)."""
    response = api.post_json(f"/fhir/{body['resourceType']}", body)
    assert response.status_code == 201, response.text
    created: str = response.json()["id"]
    return created


def _patient_entries(clinic: str, family: str, hkid: str, born: str) -> list[dict[str, Any]]:
    """A transaction's entries for a patient of ``clinic``, their visit there yesterday
    and an observation (the patient referred to by its entry's ``urn:uuid``)."""
    patient = f"urn:uuid:{uuid.uuid4()}"
    body = {
        "resourceType": "Patient",
        "identifier": [{"system": HKID_SYSTEM, "value": hkid}],
        "name": [{"family": family, "given": ["Siu Ming"]}],
        "telecom": [{"system": "phone", "value": "+852 9123 4567"}],
        "birthDate": born,
        "managingOrganization": {"reference": f"Organization/{clinic}"},
    }
    visit = encounter(patient, clinic, day=TODAY - timedelta(days=1))
    seen = observation(patient)
    visit["subject"] = seen["subject"] = {"reference": patient}
    return [
        {"fullUrl": patient, "resource": body, "request": {"method": "POST", "url": "Patient"}},
        *(
            {"resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}}
            for resource in (visit, seen)
        ),
    ]


def transaction(api: FhirTestClient, entries: list[dict[str, Any]]) -> list[str]:
    """The ids of ``entries`` written by the system in one transaction (200, or the test
    fails), in the entries' order."""
    answer = api.post_json(
        "/fhir", {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    )
    assert answer.status_code == 200, answer.text
    return [entry["response"]["location"].split("/")[1] for entry in answer.json()["entry"]]


def patient_seen(api: FhirTestClient, clinic: str, family: str, hkid: str, born: str) -> Patient:
    """A patient of ``clinic`` with an HKID, seen there yesterday, and an observation."""
    patient, _, seen = transaction(api, _patient_entries(clinic, family, hkid, born))
    return Patient(patient, hkid, born, seen)


def build_group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    """The group, its staff and patients (written by the system, as seeding does), in one
    transaction: eleven requests one by one were half of setting the group up, and the
    group is set up for over a thousand tests of a run."""
    entries: list[dict[str, Any]] = [
        {
            "resource": {"resourceType": "Organization", "id": clinic, "name": clinic},
            "request": {"method": "PUT", "url": f"Organization/{clinic}"},
        }
        for clinic in (TM, TW)
    ]
    entries += [
        {
            "resource": {
                "resourceType": "Practitioner",
                "id": practitioner,
                "name": [{"family": "Wong"}],
            },
            "request": {"method": "PUT", "url": f"Practitioner/{practitioner}"},
        }
        for practitioner in ("dr-tm", "dr-tw", "dr-other")
    ]
    people = ((TM, "Chan", "A123456(3)", "1970-03-14"), (TW, "Lee", "C668668(9)", "1982-11-02"))
    for person in people:
        entries += _patient_entries(*person)
    ids = transaction(api, entries)
    # Each patient's three entries follow the five of the directory: patient, visit, note.
    tm_patient, tw_patient = (
        Patient(ids[at], hkid, born, ids[at + 2])
        for at, (_, _, hkid, born) in zip((5, 8), people, strict=True)
    )
    with FhirTestClient(create_app(services.settings, services)) as web:
        yield Group(
            services=services,
            web=web,
            desk_tm=make_staff(services, Role.FRONT_DESK, [TM]),
            doctor_tm=make_staff(services, Role.PHYSICIAN, [TM], "dr-tm"),
            desk_tw=make_staff(services, Role.FRONT_DESK, [TW]),
            doctor_tw=make_staff(services, Role.PHYSICIAN, [TW], "dr-tw"),
            officer=make_staff(services, Role.PRIVACY_OFFICER, [TM, TW]),
            tm_patient=tm_patient,
            tw_patient=tw_patient,
        )


def registered_patient(api: FhirTestClient, clinic: str, family: str) -> str:
    """The id of a new patient of ``clinic``, registered by the system."""
    made = api.post_json(
        "/fhir/Patient",
        {
            "resourceType": "Patient",
            "name": [{"family": family}],
            "managingOrganization": {"reference": f"Organization/{clinic}"},
        },
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def deleted_patient(group: Group, api: FhirTestClient) -> str:
    """A patient of Tsuen Wan, registered by the system and deleted there by its desk."""
    patient = registered_patient(api, TW, "Ho")
    assert group.call(group.desk_tw, "DELETE", f"/fhir/Patient/{patient}").status_code == 204
    return patient


def register_body(hkid: str, born: str, clinic: str | None = None) -> dict[str, Any]:
    """A ``Patient/$register`` body: the identifier and birth date the patient shows, and
    the clinic to register them at (when the caller works at more than one)."""
    parameters: list[dict[str, Any]] = [
        {"name": "identifier", "valueIdentifier": {"system": HKID_SYSTEM, "value": hkid}},
        {"name": "birthDate", "valueDate": born},
    ]
    if clinic:
        parameters.append(
            {"name": "clinic", "valueReference": {"reference": f"Organization/{clinic}"}}
        )
    return {"resourceType": "Parameters", "parameter": parameters}


def hos(api: FhirTestClient, given: Iterable[str], **more: Any) -> set[str]:
    """Patients of Tuen Mun of the family Ho, one for each of the ``given`` names, each
    with the elements ``more`` (a shared telephone, a family plan's number): their ids."""
    return {
        created(
            api,
            {
                "resourceType": "Patient",
                "name": [{"family": "Ho", "given": [name]}],
                "managingOrganization": {"reference": f"Organization/{TM}"},
                **more,
            },
        )
        for name in given
    }


def scope_confirmed(group: Group, account: str, since: str) -> dict[str, list[str]]:
    """The categories by patient of the confirmed tier of an incident an officer declares
    on ``account`` from ``since`` (what the scope says that account read)."""
    from carevault.incidents import Actor, declare_case, scope_document

    case = {"title": "Phished", "accounts": [account], "since": since}
    incident = declare_case(group.services, Actor("staff:officer1", "10.1.2.3"), case)
    document = scope_document(group.services, incident.incident_id)
    return {line["patient"]: line["categories"] for line in document["tiers"]["confirmed"]}
