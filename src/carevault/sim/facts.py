"""The plain facts of a synthetic clinic group that demos and tests read directly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: Staff roles, as the access policy names them (carevault.domain.roles.Role values).
ROLES = (
    "physician",
    "nurse",
    "pharmacist",
    "front_desk",
    "billing",
    "clinic_manager",
    "privacy_officer",
    "integration",
)
#: Roles whose members are clinicians with a Practitioner resource.
CLINICAL_ROLES = frozenset({"physician", "nurse", "pharmacist"})


@dataclass(frozen=True, eq=False)
class Clinic:
    """One clinic of the group: an Organization ``partOf`` the group, with one Location."""

    id: str
    key: str
    name: str
    name_zh: str
    district: str
    region: str
    specialities: tuple[str, ...]
    organization: dict[str, Any]
    location: dict[str, Any]

    @property
    def location_id(self) -> str:
        return str(self.location["id"])

    def offers(self, speciality: str) -> bool:
        return speciality in self.specialities


@dataclass(frozen=True)
class StaffMember:
    """A person (or, for ``integration``, a service account) who signs in to CareVault.

    ``clinic_ids`` lists where the member works: one clinic for most, two or three
    for floaters, every clinic for group-wide roles (billing, privacy officers,
    integration). Physicians and nurses have a ``speciality``; pharmacists serve
    every speciality and have none. Clinicians have a Practitioner resource.
    """

    username: str
    display_name: str
    role: str
    clinic_ids: tuple[str, ...]
    speciality: str | None = None
    practitioner_id: str | None = None
    display_name_zh: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class BookableSlot:
    """A Slot of a physician's Schedule at one clinic, with what booking it needs."""

    slot_id: str
    practitioner_id: str
    clinic_id: str
    location_id: str
    speciality: str
    start: datetime
    end: datetime
    busy: bool
