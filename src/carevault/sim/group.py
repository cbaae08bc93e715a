"""A deterministic synthetic Hong Kong clinic group: its clinics, staff and timetable.

``build_group(seed, today)`` gives the same group for the same arguments: every id
comes from a ``random.Random`` seeded with ``seed``; ``today`` only places the week
of bookable slots.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from carevault.sim.elements import new_id, ref
from carevault.sim.facts import BookableSlot, Clinic, StaffMember
from carevault.sim.places import (
    CLINIC_SITES,
    GROUP_CODE,
    GROUP_NAME,
    GROUP_NAME_ZH,
    ClinicSite,
    site_address,
)
from carevault.sim.schedule import build_schedules
from carevault.sim.staff import clinician_resources, hire_staff, service_accounts

__all__ = ["BookableSlot", "Clinic", "ClinicGroup", "StaffMember", "build_group"]

ORGANIZATION_SYSTEM = "http://carevault.hk/sid/organization"
_ORG_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"
_PHYSICAL_TYPE = "http://terminology.hl7.org/CodeSystem/location-physical-type"
#: Invented insurers: (name, Chinese name, identifier). None is a real company.
INSURERS = (
    ("Cedar Harbour Assurance", "雪松港保險", "INS-CHA"),
    ("Jade Pier Health Insurance", "玉碼頭健康保險", "INS-JPH"),
    ("Silver Ferry Mutual", "銀渡互助保險", "INS-SFM"),
)


@dataclass(frozen=True, eq=False)
class ClinicGroup:
    """The group, its clinics, staff and every non-patient FHIR resource."""

    seed: int
    today: date
    name: str
    name_zh: str
    code: str
    group: dict[str, Any]
    clinics: tuple[Clinic, ...]
    staff: tuple[StaffMember, ...]
    insurers: tuple[dict[str, Any], ...]
    practitioners: tuple[dict[str, Any], ...]
    practitioner_roles: tuple[dict[str, Any], ...]
    schedules: tuple[dict[str, Any], ...]
    slots: tuple[dict[str, Any], ...]
    bookable_slots: tuple[BookableSlot, ...]
    _clinics_by_id: dict[str, Clinic] = field(init=False, repr=False)
    _physicians: dict[tuple[str, str], tuple[StaffMember, ...]] = field(init=False, repr=False)
    _by_role: dict[tuple[str, str], tuple[StaffMember, ...]] = field(init=False, repr=False)
    _referrals: dict[tuple[str, str], Clinic] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        physicians: dict[tuple[str, str], list[StaffMember]] = {}
        by_role: dict[tuple[str, str], list[StaffMember]] = {}
        for member in self.staff:
            for clinic_id in member.clinic_ids:
                by_role.setdefault((clinic_id, member.role), []).append(member)
                if member.role == "physician" and member.speciality is not None:
                    physicians.setdefault((clinic_id, member.speciality), []).append(member)
        object.__setattr__(self, "_clinics_by_id", {c.id: c for c in self.clinics})
        object.__setattr__(self, "_physicians", {k: tuple(v) for k, v in physicians.items()})
        object.__setattr__(self, "_by_role", {k: tuple(v) for k, v in by_role.items()})
        referrals = {}
        for home in self.clinics:
            for speciality in {s for c in self.clinics for s in c.specialities}:
                offering = [c for c in self.clinics if c.offers(speciality)]
                nearest = min(offering, key=lambda c: (c is not home, _distance(home, c)))
                referrals[home.id, speciality] = nearest
        object.__setattr__(self, "_referrals", referrals)

    def resources(self) -> Iterator[dict[str, Any]]:
        """Every non-patient resource, each after the resources it references."""
        yield self.group
        for clinic in self.clinics:
            yield clinic.organization
        yield from self.insurers
        for clinic in self.clinics:
            yield clinic.location
        yield from self.practitioners
        yield from self.practitioner_roles
        yield from self.schedules
        yield from self.slots

    def clinic(self, clinic_id: str) -> Clinic:
        return self._clinics_by_id[clinic_id]

    def physicians(self, clinic_id: str, speciality: str) -> tuple[StaffMember, ...]:
        """Physicians of ``speciality`` who work (at least some days) at the clinic."""
        return self._physicians.get((clinic_id, speciality), ())

    def members(self, clinic_id: str, role: str) -> tuple[StaffMember, ...]:
        """Staff of ``role`` who work at the clinic (group-wide roles work at every clinic)."""
        return self._by_role.get((clinic_id, role), ())

    def clinic_for(self, home_clinic_id: str, speciality: str) -> Clinic:
        """Where a patient of ``home_clinic_id`` is seen for ``speciality``.

        The home clinic when it offers the speciality, else the nearest clinic that does.
        """
        try:
            return self._referrals[home_clinic_id, speciality]
        except KeyError:
            raise LookupError(f"no clinic of the group offers {speciality}") from None

    def member(self, username: str) -> StaffMember:
        for member in self.staff:
            if member.username == username:
                return member
        raise KeyError(username)


#: Extra distance (in degrees) for crossing the harbour or the hills into another region:
#: a patient in Central goes to Causeway Bay rather than to Tsim Sha Tsui, though the
#: ferry pier is nearer.
_REGION_CROSSING = 0.05


def _distance(a: Clinic, b: Clinic) -> float:
    pa, pb = a.location["position"], b.location["position"]
    crow = math.hypot(pa["latitude"] - pb["latitude"], pa["longitude"] - pb["longitude"])
    return crow + (_REGION_CROSSING if a.region != b.region else 0.0)


def _organization(
    org_id: str, code: str, name: str, name_zh: str, kind: str, display: str
) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": org_id,
        "identifier": [{"system": ORGANIZATION_SYSTEM, "value": code}],
        "active": True,
        "type": [{"coding": [{"system": _ORG_TYPE, "code": kind, "display": display}]}],
        "name": name,
        "alias": [name_zh],
    }


def _clinic(rng: random.Random, site: ClinicSite, group_id: str) -> Clinic:
    clinic_id, location_id = new_id(rng), new_id(rng)
    code = f"{GROUP_CODE}-{site.key.upper()}"
    organization = _organization(
        clinic_id, code, site.name, site.name_zh, "prov", "Healthcare Provider"
    )
    organization.update(
        telecom=[{"system": "phone", "value": site.phone, "use": "work"}],
        address=[site_address(site)],
        partOf=ref("Organization", group_id),
    )
    location = {
        "resourceType": "Location",
        "id": location_id,
        "identifier": [{"system": ORGANIZATION_SYSTEM, "value": f"{code}-LOC"}],
        "status": "active",
        "name": site.name,
        "alias": [site.name_zh],
        "mode": "instance",
        "telecom": [{"system": "phone", "value": site.phone, "use": "work"}],
        "address": site_address(site),
        "physicalType": {"coding": [{"system": _PHYSICAL_TYPE, "code": "bu",
                                     "display": "Building"}]},
        "position": {"longitude": site.longitude, "latitude": site.latitude},
        "managingOrganization": ref("Organization", clinic_id),
        "hoursOfOperation": [
            {"daysOfWeek": ["mon", "tue", "wed", "thu", "fri"],
             "openingTime": "09:00:00", "closingTime": "18:30:00"},
            {"daysOfWeek": ["sat", "sun"], "openingTime": "09:00:00", "closingTime": "13:00:00"},
        ],
    }  # fmt: skip
    return Clinic(
        id=clinic_id,
        key=site.key,
        name=site.name,
        name_zh=site.name_zh,
        district=site.district,
        region=site.region,
        specialities=site.specialities,
        organization=organization,
        location=location,
    )


def build_group(seed: int, today: date | None = None) -> ClinicGroup:
    """The clinic group for ``seed``; ``today`` (default: the calendar date) places the slots."""
    today = today or date.today()
    rng = random.Random(f"carevault-group:{seed}")
    group_id = new_id(rng)
    group = _organization(
        group_id, GROUP_CODE, GROUP_NAME, GROUP_NAME_ZH, "prov", "Healthcare Provider"
    )
    group["telecom"] = [{"system": "phone", "value": "+852 3018 6600", "use": "work"}]
    group["address"] = [site_address(CLINIC_SITES[0]) | {"line": ["20/F, 38 Queen's Road Central"]}]
    clinics = tuple(_clinic(rng, site, group_id) for site in CLINIC_SITES)
    insurers = tuple(
        _organization(new_id(rng), code, name, name_zh, "ins", "Insurance Company")
        for name, name_zh, code in INSURERS
    )
    by_id = {c.id: c for c in clinics}
    hires = hire_staff(rng, clinics)
    staff = tuple([h.member for h in hires] + service_accounts(clinics))
    practitioners, roles = clinician_resources(rng, hires, by_id)
    schedules, slots, bookable = build_schedules(rng, list(staff), by_id, today)
    return ClinicGroup(
        seed=seed,
        today=today,
        name=GROUP_NAME,
        name_zh=GROUP_NAME_ZH,
        code=GROUP_CODE,
        group=group,
        clinics=clinics,
        staff=staff,
        insurers=insurers,
        practitioners=tuple(practitioners),
        practitioner_roles=tuple(roles),
        schedules=tuple(schedules),
        slots=tuple(slots),
        bookable_slots=tuple(bookable),
    )
