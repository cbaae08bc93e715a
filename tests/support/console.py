"""The console's tests share these: a small clinic group written through the gate, staff
who know their TOTP codes (on a clock the test moves), and signing in as a browser
does (the sign-in form's token, the session cookie, each page's CSRF token)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from carevault.access import totp
from carevault.bootstrap import Services
from carevault.clock import utc_now
from carevault.domain.policy import Actor
from carevault.domain.roles import Role
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller
from carevault.vault.writer import Put

PASSWORD = "correct horse battery staple"
CLINIC_A = "clinic-tuen-mun"
CLINIC_B = "clinic-tsuen-wan"
HKID_SYSTEM = "http://carevault.hk/sid/hkid"
MRN_SYSTEM = "http://carevault.hk/sid/mrn"


@dataclass
class MovableClock:
    """The wall clock plus an offset the test moves forward (TOTP steps, idle time)."""

    offset: timedelta = field(default_factory=timedelta)

    def __call__(self) -> datetime:
        return utc_now() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@dataclass
class Person:
    """A staff member and their authenticator; codes follow the services' clock."""

    username: str
    display_name: str
    account_id: str
    secret: str
    clock: MovableClock
    role: Role
    clinics: frozenset[str]
    password: str = PASSWORD
    last_step: int | None = None

    def code(self) -> str:
        """A code the server has not seen yet, moving the clock on when the steps it would
        accept now are used up."""
        current = int(self.clock().timestamp() // totp.STEP_SECONDS)
        step = current if self.last_step is None else max(current, self.last_step + 1)
        if step > current + 1:
            self.clock.advance(totp.STEP_SECONDS * (step - current - 1))
        self.last_step = step
        return totp.code_at(self.secret, step)

    def used_code(self) -> str:
        assert self.last_step is not None
        return totp.code_at(self.secret, self.last_step)

    def wrong_code(self) -> str:
        current = int(self.clock().timestamp() // totp.STEP_SECONDS)
        valid = {totp.code_at(self.secret, step) for step in range(current - 1, current + 2)}
        return next(code for code in (f"{n}" * 6 for n in range(10)) if code not in valid)

    @property
    def caller(self) -> Caller:
        actor = Actor(
            principal=f"staff:{self.username}",
            role=self.role,
            clinic_ids=self.clinics,
            account_id=self.account_id,
        )
        return Caller(principal=f"staff:{self.username}", actor=actor, source_address="10.1.2.3")


def add_person(
    svc: Services, clock: MovableClock, username: str, role: Role, clinics: list[str]
) -> Person:
    name = f"{role.value.replace('_', ' ').title()} {username[-1].upper()}"
    account, secret = svc.accounts.add(username, name, role, clinics, PASSWORD)
    return Person(username, name, account.account_id, secret, clock, role, frozenset(clinics))


@dataclass(frozen=True)
class Patient:
    patient_id: str
    english_name: str
    chinese_name: str
    hkid: str
    mrn: str
    birth_date: str
    phone: str
    condition: str


#: The patient at clinic A whose fields the pages are searched for.
CHAN = Patient(
    "pt-chan",
    "Chan Siu Ming",
    "陳小明",
    "K543210(3)",
    "TM-0000042",
    "1961-04-09",
    "+852 9123 4567",
    "Essential hypertension",
)
WONG = Patient(
    "pt-wong",
    "Wong Mei Ling",
    "黃美玲",
    "C668668(9)",
    "TW-0000007",
    "1990-12-01",
    "+852 6000 1234",
    "Type 2 diabetes mellitus",
)


def _patient(patient: Patient, clinic: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": patient.patient_id,
        "identifier": [
            {"system": HKID_SYSTEM, "value": patient.hkid},
            {"system": MRN_SYSTEM, "value": patient.mrn},
        ],
        "name": [
            {"use": "official", "text": patient.english_name},
            {"use": "official", "text": patient.chinese_name},
        ],
        "telecom": [{"system": "phone", "value": patient.phone, "use": "mobile"}],
        "gender": "male",
        "birthDate": patient.birth_date,
        "address": [{"line": ["Flat A, 12/F", "1 Tuen Mun Heung Sze Wui Road"]}],
        "managingOrganization": {"reference": f"Organization/{clinic}"},
    }


def _condition(patient: Patient, number: int) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": f"cond-{number}",
        "subject": {"reference": f"Patient/{patient.patient_id}"},
        "code": {"text": patient.condition},
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
    }


def seed_clinics(svc: Services) -> None:
    """Two clinics and two patients with a condition each, written by the system."""
    resources = [
        {"resourceType": "Organization", "id": CLINIC_A, "name": "Tuen Mun Family Clinic"},
        {"resourceType": "Organization", "id": CLINIC_B, "name": "Tsuen Wan Family Clinic"},
        _patient(CHAN, CLINIC_A),
        _patient(WONG, CLINIC_B),
        _condition(CHAN, 1),
        _condition(WONG, 2),
    ]
    svc.gate.write(
        Caller(principal="system:test"),
        [Put(RESOURCE_TYPES[r["resourceType"]], r["id"], r) for r in resources],
    )


_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def sign_in(client: Any, person: Person, *, code: str | None = None) -> Any:
    """Sign in through the form as a browser would; the (not followed) response."""
    page = client.get("/console/sign-in")
    assert page.status_code == 200
    return client.post(
        "/console/sign-in",
        data={
            "csrf": csrf_of(page.text),
            "username": person.username,
            "password": person.password,
            "totp": person.code() if code is None else code,
            "next": "/console/dashboard",
        },
        follow_redirects=False,
    )


def ledger_events(svc: Services) -> list[dict[str, Any]]:
    return [json.loads(data) for _, data in svc.audit_ledger.store.entries()]
