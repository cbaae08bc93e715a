"""Who works at the group: hiring staff, and their Practitioner and PractitionerRole resources."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from carevault.sim.codes import (
    BCP47,
    QUALIFICATIONS,
    REGISTRATION,
    ROLE_CODES,
    SPECIALITIES,
    SPECIALITY_LABELS,
    Concept,
)
from carevault.sim.elements import new_id, ref
from carevault.sim.facts import CLINICAL_ROLES, Clinic, StaffMember
from carevault.sim.names import PersonName, person_name

#: Identifier system linking a Practitioner to the CareVault account that acts as it.
STAFF_USERNAME_SYSTEM = "http://carevault.hk/sid/staff-username"
STAFF_EMAIL_DOMAIN = "kapoktree.example"  # RFC 2606 reserved: mail can never reach anyone

_USERNAME_PREFIX = {"physician": "dr.", "nurse": "rn.", "pharmacist": "rph."}
#: Share of women in each role, roughly as in Hong Kong's health workforce.
_FEMALE_SHARE = {
    "physician": 0.45, "nurse": 0.88, "pharmacist": 0.6, "front_desk": 0.8, "billing": 0.7,
    "clinic_manager": 0.6, "privacy_officer": 0.5,
}  # fmt: skip
#: Service accounts of client applications: group-wide, not people.
SERVICE_ACCOUNTS = (
    ("svc.lab-results", "Laboratory results interface"),
    ("svc.booking-portal", "Online booking portal"),
)


@dataclass
class _Hire:
    member: StaffMember
    name: PersonName
    female: bool


class _Payroll:
    """Hands out unique usernames while staff are hired."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.usernames: set[str] = set()
        self.hires: list[_Hire] = []

    def username(self, role: str, name: PersonName) -> str:
        stem = _USERNAME_PREFIX.get(role, "") + name.username_stem()
        candidate, number = stem, 2
        while candidate in self.usernames:
            candidate, number = f"{stem}{number}", number + 1
        self.usernames.add(candidate)
        return candidate

    def hire(self, role: str, clinic_ids: tuple[str, ...], speciality: str | None = None) -> None:
        rng = self.rng
        female = rng.random() < _FEMALE_SHARE[role]
        origin = "chinese" if rng.random() < 0.95 else rng.choice(("western", "indian", "nepali"))
        name = person_name(rng, female, rng.randint(1962, 1998), origin)
        username = self.username(role, name)
        doctor = role == "physician" and speciality != "physiotherapy"
        display = f"Dr {name.official}" if doctor else name.display
        display_zh = None
        if name.chinese is not None:
            display_zh = name.chinese + ("醫生" if doctor else "")
        practitioner_id = new_id(rng) if role in CLINICAL_ROLES else None
        member = StaffMember(
            username=username,
            display_name=display,
            role=role,
            clinic_ids=clinic_ids,
            speciality=speciality,
            practitioner_id=practitioner_id,
            display_name_zh=display_zh,
            email=f"{username}@{STAFF_EMAIL_DOMAIN}",
        )
        self.hires.append(_Hire(member, name, female))


def _physician_specialities(rng: random.Random, clinic: Clinic) -> list[str]:
    # Every speciality the clinic offers has a physician; general practice gets most of the rest.
    count = max(rng.randint(7, 10), len(clinic.specialities) + 2)
    chosen = list(clinic.specialities)
    weights = [4 if s == "general_practice" else 1 for s in clinic.specialities]
    chosen += rng.choices(clinic.specialities, weights=weights, k=count - len(chosen))
    return chosen


def _add_floaters(rng: random.Random, hires: list[_Hire], clinics: Sequence[Clinic]) -> None:
    """A few clinicians cover two or three clinics offering their speciality."""
    for role, count in (("physician", 7), ("nurse", 4)):
        candidates = [h for h in hires if h.member.role == role]
        for hire in rng.sample(candidates, count):
            member = hire.member
            others = [
                c.id
                for c in clinics
                if c.id not in member.clinic_ids and member.speciality in c.specialities
            ]
            if not others:
                continue
            extra = rng.sample(others, min(len(others), rng.choice((1, 1, 2))))
            hire.member = StaffMember(
                **{**member.__dict__, "clinic_ids": (*member.clinic_ids, *extra)}
            )


def hire_staff(rng: random.Random, clinics: Sequence[Clinic]) -> list[_Hire]:
    payroll = _Payroll(rng)
    for clinic in clinics:
        here = (clinic.id,)
        for speciality in _physician_specialities(rng, clinic):
            payroll.hire("physician", here, speciality)
        nurse_weights = [3 if s == "general_practice" else 1 for s in clinic.specialities]
        for speciality in rng.choices(clinic.specialities, nurse_weights, k=rng.randint(8, 10)):
            payroll.hire("nurse", here, speciality)
        for _ in range(rng.randint(1, 2)):
            payroll.hire("pharmacist", here)
        for _ in range(rng.randint(3, 4)):
            payroll.hire("front_desk", here)
        payroll.hire("clinic_manager", here)
    everywhere = tuple(c.id for c in clinics)
    for _ in range(rng.randint(3, 4)):
        payroll.hire("billing", everywhere)
    for _ in range(2):
        payroll.hire("privacy_officer", everywhere)
    _add_floaters(rng, payroll.hires, clinics)
    return payroll.hires


def service_accounts(clinics: Sequence[Clinic]) -> list[StaffMember]:
    everywhere = tuple(c.id for c in clinics)
    return [
        StaffMember(
            username=username, display_name=label, role="integration", clinic_ids=everywhere
        )
        for username, label in SERVICE_ACCOUNTS
    ]


def _registration_kind(member: StaffMember) -> str:
    if member.role != "physician":
        return member.role
    if member.speciality in ("dental", "physiotherapy"):
        return str(member.speciality)
    return "medical"


def practitioner(hire: _Hire, registration: str, clinics: dict[str, Clinic]) -> dict[str, Any]:
    member = hire.member
    kind = _registration_kind(member)
    system = REGISTRATION[kind][0]
    doctor = member.role == "physician" and member.speciality != "physiotherapy"
    qualifications = QUALIFICATIONS[
        member.speciality if member.role == "physician" and member.speciality else member.role
    ]
    first_clinic = clinics[member.clinic_ids[0]]
    languages = ["yue", "en"] if hire.name.origin == "chinese" else ["en"]
    return {
        "resourceType": "Practitioner",
        "id": member.practitioner_id,
        "identifier": [
            {"use": "official", "system": system, "value": registration},
            {"use": "usual", "system": STAFF_USERNAME_SYSTEM, "value": member.username},
        ],
        "active": True,
        "name": hire.name.human_names(prefix="Dr" if doctor else None),
        "telecom": [
            {
                "system": "phone",
                "value": first_clinic.organization["telecom"][0]["value"],
                "use": "work",
            },
            {"system": "email", "value": member.email, "use": "work"},
        ],  # fmt: skip
        "gender": "female" if hire.female else "male",
        "qualification": [{"code": {"text": text}} for text in qualifications],
        "communication": [
            Concept(BCP47, code, {"yue": "Cantonese", "en": "English"}[code]).concept()
            for code in languages
        ],
    }


def practitioner_roles(
    rng: random.Random, member: StaffMember, clinics: dict[str, Clinic]
) -> list[dict[str, Any]]:
    roles = []
    for clinic_id in member.clinic_ids:
        clinic = clinics[clinic_id]
        role: dict[str, Any] = {
            "resourceType": "PractitionerRole",
            "id": new_id(rng),
            "active": True,
            "practitioner": ref("Practitioner", str(member.practitioner_id)),
            "organization": ref("Organization", clinic.id),
            "location": [ref("Location", clinic.location_id)],
            "code": [ROLE_CODES[member.role].concept()],
        }
        if member.speciality is not None:
            label = SPECIALITY_LABELS[member.speciality][0]
            role["specialty"] = [SPECIALITIES[member.speciality].concept(label)]
        role["telecom"] = [dict(clinic.organization["telecom"][0])]
        roles.append(role)
    return roles


def clinician_resources(
    rng: random.Random, hires: list[_Hire], clinics: dict[str, Clinic]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Practitioner and PractitionerRole resources of every clinician hired."""
    registrations: set[str] = set()
    practitioners: list[dict[str, Any]] = []
    roles: list[dict[str, Any]] = []
    for hire in hires:
        member = hire.member
        if member.practitioner_id is None:
            continue
        _, prefix, digits = REGISTRATION[_registration_kind(member)]
        while True:
            number = f"{prefix}{rng.randrange(10 ** (digits - 1), 10**digits)}"
            if number not in registrations:
                registrations.add(number)
                break
        practitioners.append(practitioner(hire, number, clinics))
        roles.extend(practitioner_roles(rng, member, clinics))
    return practitioners, roles
